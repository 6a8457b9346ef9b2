"""The occurrence index on tiny random checkpoints: exact search, storage, refusals, corruption, Parquet, recall."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from bert_tf.embed.corpus_format import run_metadata
from bert_tf.embed.embedder import BertEmbedder
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.embed.space import VectorSpace
from bert_tf.files.atomic import staged_directory
from bert_tf.index import (CorruptIndexError, IndexMismatchError, IndexWriter, OccurrenceIndex, build_index,
                           build_index_from_parquet)
from bert_tf.index.scoring import VectorStats, normalize
from bert_tf.testing import write_random_checkpoint
from tests.conftest import tiny_config

WORDS = ("river bank water money loan stone tree house rate fish boat road city hill light cold warm "
         "old new red blue green").split()
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS]


def corpus(n=60, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 9)))) for _ in range(n)]


def write_checkpoint(directory, seed=0, vocab=VOCAB):
    """A tiny random checkpoint whose vocabulary holds the corpus's words (so they are not all [UNK])."""
    write_random_checkpoint(directory, tiny_config(vocab_size=len(vocab)), seed=seed, vocab=vocab)
    return directory


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="module")
def tiny(module_dir):
    """One tiny random model for the module (loading and tracing it is most of a test's time)."""
    return BertEmbedder.from_checkpoint(write_checkpoint(module_dir / "tiny"))


@pytest.fixture(scope="module")
def shared(tiny, module_dir):
    """One index of `corpus()` for the tests that only read it."""
    return build_index(corpus(), module_dir / "shared", embedder=tiny), corpus()


@pytest.fixture
def built(shared, tiny, tmp_path):
    """A copy of the shared index of this test's own, to damage or replace."""
    shutil.copytree(shared[0].directory, tmp_path / "ix")
    return OccurrenceIndex.open(tmp_path / "ix", embedder=tiny), shared[1]


def brute_force(index, query, k):
    """Cosine by float64 numpy over the stored vectors: (scores, rows), best first, ties by row."""
    stored = index.words.all().astype(np.float64)
    scores = stored @ query.astype(np.float64)
    order = np.lexsort((np.arange(len(scores)), -scores))[:k]
    return scores[order], order


def test_exact_search_is_brute_force_cosine_in_the_same_order(shared):
    index, texts = shared
    rng = np.random.default_rng(1)
    for row in rng.choice(index.n_occurrences, 5, replace=False):
        query = index.words.rows([row])[0]
        scores, rows = index.searcher("words").search(query, 10)
        want_scores, want_rows = brute_force(index, query, 10)
        assert rows.tolist() == want_rows.tolist()
        np.testing.assert_allclose(scores, want_scores, rtol=0, atol=4 * np.finfo(np.float32).eps)
    assert index.searcher("words").kind == "exact"


def test_stored_vectors_are_the_embedders_normalised_to_float16_rounding(shared, tiny):
    index, texts = shared
    raw = np.concatenate([np.stack([w.vector for w in words])
                          for words, _ in tiny.iter_embed(texts, index.options) if words])
    stats = VectorStats().update(raw)
    want = normalize(raw, stats, index.scoring)
    # float16 keeps 11 significant bits: half an ulp of the largest component of a unit row.
    assert np.abs(index.words.all() - want).max() <= 2.0 ** -11
    np.testing.assert_allclose(np.linalg.norm(index.words.all(), axis=1), 1, atol=len(want[0]) * 2.0 ** -11)


def test_search_word_and_texts_return_the_indexed_occurrences(shared):
    index, texts = shared
    hits = index.search_word("bank", texts[next(i for i, t in enumerate(texts) if "bank" in t.split())], k=5)
    assert hits and all(h.word == "bank" and h.text[h.start:h.end] == "bank" for h in hits)
    assert hits[0].score == pytest.approx(1, abs=1e-2)  # the query sentence is in the corpus
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    texts_found = index.search(texts[3], k=3)
    assert texts_found[0].text == texts[3] and texts_found[0].id == "4"  # ids are line numbers
    neighbors = index.neighbors("bank", "river bank water", k=4)
    assert neighbors and all(n.word != "bank" for n in neighbors)


def test_query_word_missing_from_sentence_or_index_is_a_clear_error(shared):
    index, _ = shared
    with pytest.raises(ValueError, match="'loan' is not in the query sentence"):
        index.search_word("loan", "river bank water")
    with pytest.raises(ValueError, match="is 2 words to the model"):  # search_word takes several (spans)
        index.neighbors("river bank", "river bank water")


def test_another_checkpoint_casing_precision_or_options_is_refused(shared, tmp_path):
    index, _ = shared
    other_dir = write_checkpoint(tmp_path / "other", seed=1)
    other = BertEmbedder.from_checkpoint(other_dir)
    with pytest.raises(IndexMismatchError, match="checkpoint is .*tiny \\(fingerprint .* in the index, .*other "
                                                 "\\(fingerprint .* in the query"):
        OccurrenceIndex.open(index.directory, embedder=other)
    with pytest.raises(IndexMismatchError, match="combine is 'sum' in the index, 'mean' in the query"):
        OccurrenceIndex.open(index.directory, embedder=index.embedder, options=EmbeddingOptions(combine="mean"))
    cased = BertEmbedder.from_checkpoint(index.space.path, lower_case=False)
    with pytest.raises(IndexMismatchError, match="lower_case is True in the index, False in the query"):
        OccurrenceIndex.open(index.directory, embedder=cased)
    half = BertEmbedder.from_checkpoint(index.space.path, precision="bfloat16")
    with pytest.raises(IndexMismatchError, match="precision is 'float32' in the index, 'bfloat16' in the query"):
        OccurrenceIndex.open(index.directory, embedder=half)
    # The defaults written out are the same vectors, and batching changes none: accepted.
    OccurrenceIndex.open(index.directory, embedder=index.embedder,
                         options=EmbeddingOptions(layers=(-2, -1), batch_size=3))


def test_an_index_without_its_manifest_is_refused(built):
    index, _ = built
    os.unlink(index.directory / "manifest.json")
    with pytest.raises(CorruptIndexError, match="not a complete index"):
        OccurrenceIndex.open(index.directory)


@pytest.mark.parametrize("damage", ["flip", "truncate", "remove"])
def test_a_damaged_file_is_refused(built, damage):
    index, _ = built
    path = index.directory / "words.npy"
    data = bytearray(path.read_bytes())
    if damage == "flip":
        data[-3] ^= 0x40
        path.write_bytes(bytes(data))
        match = "words.npy does not match its checksum"
    elif damage == "truncate":
        path.write_bytes(bytes(data[:-64]))
        match = "words.npy has .* bytes, the manifest says"
    else:
        os.unlink(index.directory / "meta.sqlite")
        match = "meta.sqlite is missing"
    with pytest.raises(CorruptIndexError, match=match):
        OccurrenceIndex.open(index.directory)


def test_an_interrupted_build_leaves_nothing_and_keeps_the_old_index(tiny, tmp_path, built):
    def stream():
        yield from corpus(300)[:200]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_index(stream(), tmp_path / "new", embedder=tiny)
    assert not (tmp_path / "new").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".new")] == []
    old, _ = built
    before = (old.directory / "manifest.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):
        build_index(stream(), old.directory, embedder=tiny, force=True)
    assert (old.directory / "manifest.json").read_bytes() == before
    OccurrenceIndex.open(old.directory)  # still whole
    with pytest.raises(FileExistsError, match="pass force=True"):
        build_index(["a"], old.directory, embedder=tiny)


def test_int8_vectors_search_like_float16(tiny, tmp_path):
    texts = corpus()
    f16 = build_index(texts, tmp_path / "f16", embedder=tiny)
    i8 = build_index(texts, tmp_path / "i8", embedder=tiny, vector_dtype="int8")
    assert os.path.getsize(i8.directory / "words.npy") < 0.6 * os.path.getsize(f16.directory / "words.npy")
    # Symmetric int8: at most half a step (peak / 254) off per component.
    peak = np.abs(f16.words.all()).max(axis=1, keepdims=True)
    assert (np.abs(i8.words.all() - f16.words.all()) <= peak / 254 + 2.0 ** -11).all()
    a = f16.search_word("bank", "river bank water", k=5)
    b = i8.search_word("bank", "river bank water", k=5)
    # The best scores agree to the int8 error of a dot product of unit rows.
    np.testing.assert_allclose([h.score for h in b], [h.score for h in a], rtol=0, atol=0.01)


def write_beam_parquet(path, embedder, texts, options, *, metadata=True, fields=True):
    """A Parquet file in the exact layout of `bert-tf beam-embed --format parquet` (`fields=False`: of format
    version 2, which had no `fields` column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = {name: [] for name in ("id", "text", "words", "starts", "ends", "word_vectors", "sentence_vector")}
    for n, (text, (words, sentence)) in enumerate(zip(texts, embedder.iter_embed(texts, options)), start=1):
        rows["id"].append(f"corpus.txt:{n}")
        rows["text"].append(text)
        rows["words"].append([w.text for w in words])
        rows["starts"].append([w.start for w in words])
        rows["ends"].append([w.end for w in words])
        rows["word_vectors"].append([w.vector.tolist() for w in words])
        rows["sentence_vector"].append(sentence.tolist())
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("words", pa.list_(pa.string())),
                        ("starts", pa.list_(pa.int32())), ("ends", pa.list_(pa.int32())),
                        ("word_vectors", pa.list_(pa.list_(pa.float32()))),
                        ("sentence_vector", pa.list_(pa.float32()))])
    if fields:
        rows["fields"] = [json.dumps({"file": "corpus.txt"})] * len(texts)
        schema = schema.append(pa.field("fields", pa.string()))
    if metadata:
        recorded = run_metadata(embedder.space(options)) if metadata is True else metadata
        schema = schema.with_metadata({b"bert_tf": json.dumps(recorded).encode()})
    pq.write_table(pa.Table.from_pydict(rows, schema=schema), path, row_group_size=7)


def test_an_index_from_beam_parquet_equals_one_built_from_the_texts(tiny, tmp_path):
    texts = corpus(40) + [""]
    options = tiny.options()
    write_beam_parquet(tmp_path / "out-00000-of-00002.parquet", tiny, texts[:25], options)
    write_beam_parquet(tmp_path / "out-00001-of-00002.parquet", tiny, texts[25:], options)
    from_parquet = build_index_from_parquet(tmp_path / "out", tmp_path / "pq")
    from_texts = build_index(texts, tmp_path / "tx", embedder=tiny)
    assert from_parquet.n_texts == len(texts) and from_parquet.n_occurrences == from_texts.n_occurrences
    np.testing.assert_array_equal(np.load(tmp_path / "pq" / "words.npy"), np.load(tmp_path / "tx" / "words.npy"))
    hit = OccurrenceIndex.open(tmp_path / "pq", embedder=tiny).search_word("bank", "river bank water", k=1)[0]
    assert hit.id.startswith("corpus.txt:") and hit.text[hit.start:hit.end] == "bank"


def test_parquet_without_bert_tf_metadata_or_of_two_models_is_refused(tiny, tmp_path):
    write_beam_parquet(tmp_path / "bare.parquet", tiny, corpus(3), tiny.options(), metadata=False)
    with pytest.raises(ValueError, match="no bert_tf metadata"):
        build_index_from_parquet(tmp_path / "bare.parquet", tmp_path / "a")
    write_beam_parquet(tmp_path / "m-0.parquet", tiny, corpus(3), tiny.options())
    write_beam_parquet(tmp_path / "m-1.parquet", tiny, corpus(3), tiny.options(combine="mean"))
    with pytest.raises(ValueError, match="m-1.parquet holds other vectors than .*m-0.parquet \\(combine is 'sum' in "
                                         "the first, 'mean' in this one\\)"):
        build_index_from_parquet(str(tmp_path / "m-*.parquet"), tmp_path / "b")
    # A file of the format before VectorSpace (identity and options as written) whose checkpoint has gone.
    identity = {"checkpoint": "gone", "path": str(tmp_path / "gone"), "fingerprint": tiny.fingerprint,
                "lower_case": True, "precision": "float32"}
    write_beam_parquet(tmp_path / "old.parquet", tiny, corpus(3), tiny.options(),
                       metadata={"format_version": 1, "identity": identity, "options": tiny.options().to_dict()})
    with pytest.raises(ValueError, match="old.parquet: it was written by an earlier bert_tf, .*the checkpoint "
                                         ".*gone is no longer there; .* beam-embed"):
        build_index_from_parquet(tmp_path / "old.parquet", tmp_path / "d")
    with pytest.raises(FileNotFoundError, match="no Parquet file matches"):
        build_index_from_parquet(tmp_path / "nothing", tmp_path / "c")
    assert not any((tmp_path / n).exists() for n in "abcd")


def test_parquet_of_the_format_before_vector_space_is_read(tiny, tmp_path):
    """Format 1 (c4f1d69) recorded identity() and the options as written: resolved with the checkpoint's config."""
    identity = {"checkpoint": "tiny", "path": tiny.checkpoint, "fingerprint": tiny.fingerprint, "lower_case": True,
                "precision": "float32"}
    options = EmbeddingOptions(layers=(-1,), combine="mean")
    write_beam_parquet(tmp_path / "old.parquet", tiny, corpus(10), options,
                       metadata={"format_version": 1, "identity": identity, "options": options.to_dict()})
    index = build_index_from_parquet(tmp_path / "old.parquet", tmp_path / "ix")
    assert index.space == tiny.space(options) and index.space.path == tiny.checkpoint
    assert json.loads((tmp_path / "ix" / "manifest.json").read_text())["space"]["layers"] == [-1]


def clustered(n, width, seed=0):
    """Unit-ish vectors around 50 centres: a corpus's occurrences bunch like this, unlike white noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(50, width))
    return (centres[rng.integers(0, 50, n)] + 0.6 * rng.normal(size=(n, width))).astype(np.float32)


@pytest.mark.slow
def test_approximate_search_recall_at_10_on_a_small_index(tmp_path, monkeypatch):
    import bert_tf.index.builder as builder

    monkeypatch.setattr(builder, "EXACT_LIMIT", 500)  # 6000 occurrences and 600 texts: both approximate
    vectors = clustered(6000, 64)
    with staged_directory(tmp_path / "ix") as staging:
        space = VectorSpace("0", True, "float32", (-1,), "sum", "mean", 64, "mean", -2, 512, name="synthetic")
        writer = IndexWriter(staging, space=space, width=64, sentence_width=64)
        for start in range(0, len(vectors), 10):
            part = vectors[start:start + 10]
            writer.add(str(start), "w " * len(part), [("w", 2 * i, 2 * i + 1) for i in range(len(part))], part,
                       part.mean(axis=0))
        writer.finish(source={"kind": "test"})
    index = OccurrenceIndex.open(tmp_path / "ix")
    approximate = index.searcher("words")
    assert approximate.kind == "approximate"
    exact = index.words.all()
    recalls = []
    for row in np.random.default_rng(2).choice(len(exact), 50, replace=False):
        query = exact[row] + 0.05 * np.random.default_rng(int(row)).normal(size=64).astype(np.float32)
        query /= np.linalg.norm(query)
        _, got = approximate.search(query, 10)
        _, want = brute_force(index, query, 10)
        recalls.append(len(set(got.tolist()) & set(want.tolist())) / 10)
    assert np.mean(recalls) >= 0.95, np.mean(recalls)
    texts = index.searcher("sentences")
    assert texts.kind == "approximate" and (tmp_path / "ix" / "sentences.faiss").is_file()
    stored = index.sentences.all()
    for row in (0, 299, 599):  # a stored text's own vector: itself first, with the exact score
        scores, rows = texts.search(stored[row], 3)
        assert rows[0] == row and scores[0] == pytest.approx(float(stored[row] @ stored[row]))


def test_a_corpus_of_empty_texts_builds_an_index_that_finds_nothing(tiny, tmp_path):
    index = build_index(["", "   "], tmp_path / "empty", embedder=tiny)
    assert (index.n_texts, index.n_occurrences) == (2, 0)
    with pytest.raises(ValueError, match=r"has no texts to search \(its 2 texts are all empty\)"):
        index.search("river bank", k=5)  # blank texts are not ranked
    with pytest.raises(ValueError, match="has no occurrence of 'bank'"):
        index.search_word("bank", "river bank")
    with pytest.raises(ValueError, match="has no word occurrences"):
        index.neighbors("bank", "river bank")
    nothing = build_index([], tmp_path / "nothing", embedder=tiny)
    with pytest.raises(ValueError, match="has no texts to search$"):
        nothing.search("river bank")


@pytest.mark.slow
def test_an_index_of_a_real_beam_embed_run(tiny, tmp_path):
    pytest.importorskip("apache_beam")
    from bert_tf.cli.main import main

    texts = corpus(30)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    assert main(["beam-embed", "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "out"),
                 "--checkpoint", tiny.checkpoint]) == 0
    beam = build_index_from_parquet(tmp_path / "out", tmp_path / "beam")
    direct = build_index(texts, tmp_path / "direct", embedder=tiny)
    assert beam.space == direct.space and beam.n_occurrences == direct.n_occurrences
    # Other batches round differently in float32; stored as float16 the vectors agree to its half-ulp.
    assert np.abs(beam.words.all() - direct.words.all()).max() <= 2.0 ** -10
    hit = OccurrenceIndex.open(tmp_path / "beam", embedder=tiny).search_word("bank", texts[0] if "bank" in
                                                                            texts[0] else "river bank", k=1)[0]
    assert hit.id.endswith(f":{texts.index(hit.text) + 1}") and hit.text[hit.start:hit.end] == "bank"


def test_parquet_of_format_version_2_without_fields_is_read_and_a_version_3_one_needs_the_column(tiny, tmp_path):
    """Format 2 (before the `fields` column): its texts have no fields. A file that says 3 must have it."""
    options = tiny.options()
    old = {**run_metadata(tiny.space(options)), "format_version": 2}
    write_beam_parquet(tmp_path / "v2.parquet", tiny, corpus(5), options, metadata=old, fields=False)
    index = build_index_from_parquet(tmp_path / "v2.parquet", tmp_path / "ix")
    assert index.n_texts == 5 and index.field_types == {}
    write_beam_parquet(tmp_path / "v3.parquet", tiny, corpus(5), options)
    assert build_index_from_parquet(tmp_path / "v3.parquet", tmp_path / "ix3").field_types == {"file": "str"}
    write_beam_parquet(tmp_path / "bad.parquet", tiny, corpus(5), options, fields=False)
    with pytest.raises(ValueError, match="bad.parquet lacks the column fields, which its format version has"):
        build_index_from_parquet(tmp_path / "bad.parquet", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
