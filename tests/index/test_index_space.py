"""The index records its `VectorSpace` and checks every query against it: where the checkpoint is; int8 in any batch."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bert_tf.cli.main import main
from bert_tf.embed.batching import MAX_BATCH_POSITIONS
from bert_tf.embed.embedder import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.index import CorruptIndexError, IndexMismatchError, OccurrenceIndex, build_index
from bert_tf.testing import write_random_checkpoint
from tests.conftest import tiny_config
from tests.index.test_index_store import VOCAB, corpus, write_checkpoint


@pytest.fixture
def relative_build(tmp_path, monkeypatch, capsys):
    """An index built in `work/` with `--checkpoint ckpts/tiny` (relative), then the checkpoint moved to `moved/`."""
    work = tmp_path / "work"
    write_checkpoint(work / "ckpts" / "tiny")
    (work / "corpus.txt").write_text("\n".join(corpus(20)) + "\n", encoding="utf-8")
    monkeypatch.chdir(work)
    assert main(["index", "build", "--input", "corpus.txt", "--out", "ix", "--checkpoint", "ckpts/tiny",
                 "--no-progress"]) == 0
    capsys.readouterr()
    return work


def test_a_relative_checkpoint_is_recorded_absolute_and_queries_work_from_elsewhere(relative_build, tmp_path,
                                                                                    monkeypatch, capsys):
    manifest = json.loads((relative_build / "ix" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["space"]["path"] == str(relative_build / "ckpts" / "tiny")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["search", str(relative_build / "ix"), "--word", "bank", "river bank water", "--json", "-k", "1"]) == 0
    assert json.loads(capsys.readouterr().out)["word"] == "bank"


def test_a_moved_checkpoint_is_named_and_found_with_checkpoint(relative_build, tmp_path, monkeypatch, capsys):
    recorded = relative_build / "ckpts" / "tiny"
    shutil.move(recorded, tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    index = str(relative_build / "ix")
    assert main(["search", index, "--word", "bank", "river bank water"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == (f"bert-tf: error: the index {index} was built with the checkpoint {recorded}, which is no longer "
                    "there; pass --checkpoint DIR (checkpoint= in Python) with the folder it is in now")
    for command in (["search", index, "river bank water"], ["neighbors", index, "--word", "bank", "river bank"]):
        assert main(command + ["--checkpoint", str(tmp_path / "moved"), "--json", "-k", "1"]) == 0
    # Another checkpoint given as the moved one is refused by its fingerprint, even one that cannot serve the
    # index's options (layers=-2,-1 of a one-layer model).
    for other, overrides in (("other", {}), ("shallow", {"num_hidden_layers": 1})):
        write_random_checkpoint(tmp_path / other, tiny_config(vocab_size=len(VOCAB), **overrides), seed=1, vocab=VOCAB)
        assert main(["search", index, "river bank water", "--checkpoint", str(tmp_path / other)]) == 1
        (line,) = capsys.readouterr().err.strip().splitlines()
        assert line.startswith(f"bert-tf: error: the index {index} holds other vectors than the query's: checkpoint "
                               f"is {recorded} (fingerprint "), line
        assert f"in the index, {tmp_path / other} (fingerprint " in line


def test_senses_needs_no_model(relative_build, tmp_path, monkeypatch, capsys):
    shutil.move(relative_build / "ckpts" / "tiny", tmp_path / "moved")

    def no_model(*args, **kwargs):
        raise AssertionError("senses loaded a model")

    monkeypatch.setattr(BertEmbedder, "load", no_model)
    assert main(["senses", str(relative_build / "ix"), "BANK", "--n-senses", "2", "--json"]) == 0
    senses = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(senses) == 2 and {s["word"] for s in senses} == {"bank"}  # cased input, the uncased index's word
    index = OccurrenceIndex.open(relative_build / "ix")
    assert index.senses("bank", n_senses=2).occurrences == sum(s["size"] for s in senses)
    with pytest.raises(ValueError, match="is 2 words to the model"):
        index.senses("river bank")


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    directory = write_checkpoint(tmp_path_factory.mktemp("int8") / "tiny")
    return BertEmbedder.from_checkpoint(directory, precision="int8")


def test_an_int8_index_takes_queries_of_any_batch_plan(int8, tmp_path):
    """int8 vectors no longer depend on the batch: nothing is pinned, and an index an earlier int8
    wrote with its batch plan recorded still opens and answers (the plan is dropped)."""
    index = build_index(corpus(30), tmp_path / "ix", embedder=int8, options=EmbeddingOptions(batch_size=4))
    assert index.options.batch_size is None and "batch_size" not in index.space.to_dict()
    for batch_size in (None, 2, 4):
        index.check_options(EmbeddingOptions(batch_size=batch_size))
    other_plan = BertEmbedder(int8.config, int8.encoder, int8.tokenizer, checkpoint=int8.checkpoint,
                              fingerprint=int8.fingerprint, batch_size=8)
    reopened = OccurrenceIndex.open(index.directory, embedder=other_plan)
    hit = reopened.search_word("bank", "river bank water", k=1)[0]
    assert hit.word == "bank" and hit.score == pytest.approx(index.search_word("bank", "river bank water", k=1)[0].score,
                                                             abs=1e-5)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    manifest["space"].update(batch_size=4, batch_positions=MAX_BATCH_POSITIONS)  # as an earlier int8 index
    path.write_text(json.dumps(manifest), encoding="utf-8")
    old = OccurrenceIndex.open(index.directory, embedder=int8, options=EmbeddingOptions(batch_size=2))
    assert old.space == index.space and old.search_word("bank", "river bank water", k=1)[0].word == "bank"


def test_an_index_of_the_previous_format_is_read_and_a_damaged_space_refused(int8, tmp_path):
    index = build_index(corpus(5), tmp_path / "ix", embedder=int8)
    path = tmp_path / "ix" / "manifest.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    # Version 1 (c4f1d69) recorded identity() and the options as written; they resolve against the checkpoint's config.
    old = {k: v for k, v in manifest.items() if k != "space"}
    old.update(version=1, options=EmbeddingOptions().to_dict(),
               identity={"checkpoint": "tiny", "path": index.space.path, "fingerprint": int8.fingerprint,
                         "lower_case": True, "precision": "int8"})
    path.write_text(json.dumps(old), encoding="utf-8")
    reopened = OccurrenceIndex.open(tmp_path / "ix")
    assert reopened.space == index.space
    assert reopened.search_word("bank", "river bank water", k=1)[0].word == "bank"
    old["identity"]["path"] = str(tmp_path / "gone")
    path.write_text(json.dumps(old), encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="cannot be read: it was written by an earlier bert_tf, .* the "
                                                "checkpoint .*gone is no longer there; rebuild it with"):
        OccurrenceIndex.open(tmp_path / "ix")
    path.write_text(json.dumps({**manifest, "space": {**manifest["space"], "colour": 1}}), encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="the recorded vector space has unknown or missing field\\(s\\) "
                                                "colour; rebuild it"):
        OccurrenceIndex.open(tmp_path / "ix")
    path.write_text(json.dumps({**manifest, "version": 4}), encoding="utf-8")
    with pytest.raises(CorruptIndexError, match="format version 4; this bert_tf reads versions 1, 2, 3: rebuild"):
        OccurrenceIndex.open(tmp_path / "ix")
    assert os.path.isdir(tmp_path / "ix")  # refused, not removed
