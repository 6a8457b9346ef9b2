"""EmbedTexts, the model handler and the three output formats, on the in-process FnApiRunner."""

from __future__ import annotations

import glob
import signal
import json
import subprocess
import sys

import numpy as np
import pytest

import apache_beam as beam

from bert_tf.beam import DeadLetter, EmbedSpec, EmbedTexts, Embedding
from bert_tf.beam.handler import BATCH_PIECES, BertModelHandler, estimated_pieces
from bert_tf.beam.pipeline import make_pipeline
from bert_tf.beam.records import (METADATA_KEY, parquet_schema, read_metadata, run_metadata,
                                  tfrecord_features)
from bert_tf.beam.sinks import WriteDeadLetters, WriteEmbeddings
from bert_tf.beam.transform import check_record
from bert_tf.embed.batching import MAX_BATCH_POSITIONS
from bert_tf.embed.options import EmbeddingOptions
from tests.beam.conftest import assert_rows_match_embedder, read_dead_letters, read_parquet

TEXTS = {"short": "A mouse is a rodent animal.", "empty": "", "cjk": "東京は日本の首都です。",
         "long": "the mouse of the computer device " * 40, "controls": "tab\there \x01 \x1b[0m"}


def test_check_record_sorts_every_kind_of_element():
    assert check_record(("a", "text")) == ("a", "text", {})  # a pair has no fields
    assert check_record((7, "text")) == ("7", "text", {})  # integer ids become strings
    assert check_record(("a", "x\ud800y")) == ("a", "x\ufffdy", {})  # cleaned as everywhere in bert_tf
    assert check_record(("a", "café".encode())) == ("a", "café", {})
    # Fields travel with the text; a list, an object or a null is not a field (as in `index build`).
    assert check_record(("a", "t", {"source": "nyt", "year": 2019, "ok": True, "x": 1.5, "tags": ["p"],
                                    "who": {"n": 1}, "none": None})) == \
        ("a", "t", {"source": "nyt", "year": 2019, "ok": True, "x": 1.5})
    assert check_record(("a", "t", ["source"])).reason == "the fields are list, expected a dict"
    bad_utf8 = check_record(("a", b"caf\xe9"))
    assert bad_utf8 == DeadLetter("a", "not valid UTF-8 (byte 3: b'\\xe9')", "caf\\xe9")
    assert check_record(("a", 3.5)).reason == "the text is float, expected str"
    assert check_record(("a", None)).id == "a"
    assert check_record("no pair").id is None and "not an (id, text) pair" in check_record("no pair").reason
    assert check_record((None, "t")).reason == "the id is NoneType None, expected str"
    letter = DeadLetter("f:1", "not valid JSON")
    assert check_record(letter) is letter  # a source's dead letters pass through


class _Flaky:
    """An embedder stand-in whose batches fail when they hold the text "boom"."""

    def __init__(self, embedder):
        self.embedder = embedder

    def options(self, options):
        return self.embedder.options(options)

    def resolve(self, options):
        return self.embedder.resolve(options)

    def iter_batches(self, texts, output_value, options, **kwargs):
        if "boom" in texts:
            raise RuntimeError("the model broke on boom")
        return self.embedder.iter_batches(texts, output_value, options, **kwargs)


def test_a_failing_batch_is_retried_one_text_at_a_time(embedder):
    handler = BertModelHandler(EmbedSpec())
    out = handler.run_inference([("1", "a mouse"), ("2", "boom"), ("3", "a rat")], _Flaky(embedder))
    assert [type(x) for x in out] == [Embedding, DeadLetter, Embedding]
    assert out[1] == DeadLetter("2", "embedding failed: RuntimeError: the model broke on boom", "boom")
    assert out[0].words == ["a", "mouse"] and out[2].id == "3"


def test_batches_are_sized_in_word_pieces_and_model_calls_by_padded_positions(embedder):
    kwargs = BertModelHandler(EmbedSpec()).batch_elements_kwargs()
    assert kwargs["min_batch_size"] == kwargs["max_batch_size"] == BATCH_PIECES
    assert kwargs["element_size_fn"] is estimated_pieces
    assert estimated_pieces(("a", "x" * 400)) == 102 and estimated_pieces(("a", "")) == 2
    assert estimated_pieces(("a", "猫" * 100)) == 77  # 3 bytes a character: about one piece each

    calls = []
    embedder.on_call = calls.append
    try:
        texts = ["the bank of the river " * 30] * 12 + ["a cat"] * 200  # long and short in one Beam batch
        BertModelHandler(EmbedSpec()).run_inference([(str(i), t) for i, t in enumerate(texts)], embedder)
    finally:
        embedder.on_call = None
    assert len(calls) > 2
    for call in calls:  # the library's planner: every call within the budget, short texts not padded long
        assert call.rows == 1 or call.rows * call.padded_length <= MAX_BATCH_POSITIONS
    assert min(c.padded_length for c in calls) <= 8 < max(c.padded_length for c in calls)


def test_embed_texts_gives_the_embedders_vectors_with_any_options(tmp_path, beam_checkpoint, embedder):
    from bert_tf.embed.embedder import BertEmbedder

    custom = EmbeddingOptions(layers=(-1, 0), combine="concat", subword_pooling="first", dim=40,
                              sentence_strategy="cls", sentence_layer=-1, max_seq_length=16)
    specs = {"default": EmbedSpec(str(beam_checkpoint)), "custom": EmbedSpec(str(beam_checkpoint), custom),
             "bfloat16": EmbedSpec(str(beam_checkpoint), precision="bfloat16")}
    pairs = list(TEXTS.items()) + [("bad", b"\xff"), ("number", 12)]
    with make_pipeline() as p:
        texts = p | beam.Create(pairs)
        for name, spec in specs.items():
            out = texts | f"Embed {name}" >> EmbedTexts(spec)
            out["embeddings"] | f"Write {name}" >> WriteEmbeddings(str(tmp_path / name), "parquet")
            out["dead_letters"] | f"Dead {name}" >> WriteDeadLetters(str(tmp_path / name))
    references = {"default": embedder, "custom": embedder,
                  "bfloat16": BertEmbedder.from_checkpoint(beam_checkpoint, precision="bfloat16")}
    for name, spec in specs.items():
        rows = read_parquet(tmp_path / name)
        assert sorted(rows) == sorted(TEXTS)
        assert_rows_match_embedder(rows, TEXTS, references[name], spec.options)
        assert sorted(read_dead_letters(tmp_path / name)) == ["bad", "number"]
    assert len(read_parquet(tmp_path / "custom")["short"]["word_vectors"][0]) == 40
    assert read_parquet(tmp_path / "default")["empty"]["words"] == []
    # The precision reached the workers: bfloat16 vectors are not the float32 ones.
    assert read_parquet(tmp_path / "bfloat16")["short"]["sentence_vector"] != \
        read_parquet(tmp_path / "default")["short"]["sentence_vector"]


def test_parquet_tfrecord_and_jsonl_read_back_into_the_same_arrays(tmp_path, beam_checkpoint, embedder):
    import pyarrow.parquet as pq

    from bert_tf.runtime import tf

    spec = EmbedSpec(str(beam_checkpoint))
    metadata = run_metadata(embedder.space(spec.options))
    width = embedder.resolve(embedder.options(spec.options)).vector_size
    with make_pipeline() as p:
        out = p | beam.Create(list(TEXTS.items())) | EmbedTexts(spec)
        for fmt in ("parquet", "tfrecord", "jsonl"):
            out["embeddings"] | f"Write {fmt}" >> WriteEmbeddings(str(tmp_path / fmt), fmt, metadata=metadata,
                                                                  num_shards=2)
    (first, *_) = parquet_files = sorted(glob.glob(str(tmp_path / "parquet-*-of-00002.parquet")))
    assert len(parquet_files) == 2
    assert read_metadata(first) == json.loads(json.dumps(metadata))  # the VectorSpace, under b"bert_tf"
    assert METADATA_KEY in pq.read_schema(first).metadata
    import pyarrow as pa

    schema = pq.read_schema(first)
    assert schema.equals(parquet_schema(), check_metadata=False)
    assert schema.field("starts").type.value_type == pa.int32()
    assert schema.field("word_vectors").type.value_type.value_type == pa.float32()
    parquet = {r["id"]: r for r in read_parquet(tmp_path / "parquet").values()}

    files = sorted(glob.glob(str(tmp_path / "tfrecord-*-of-00002.tfrecord")))
    records = {}
    for x in tf.data.TFRecordDataset(files).map(lambda r: tf.io.parse_single_example(r, tfrecord_features())):
        record_id = x["id"].numpy().decode()
        records[record_id] = x
    assert sorted(records) == sorted(parquet) == sorted(TEXTS)

    jsonl = {}
    for path in glob.glob(str(tmp_path / "jsonl-*-of-00002.jsonl")):
        for line in open(path, encoding="utf-8"):
            row = json.loads(line)
            jsonl[row["id"]] = row
    for record_id, row in parquet.items():
        vectors = np.array(row["word_vectors"], np.float32).reshape(len(row["words"]), width)
        x = records[record_id]
        from_tf = tf.reshape(x["word_vectors"], [-1, x["vector_size"]]).numpy()
        np.testing.assert_array_equal(from_tf, vectors)  # the same run: bit-equal in every format
        np.testing.assert_array_equal(x["sentence_vector"].numpy(), np.array(row["sentence_vector"], np.float32))
        assert [w.decode() for w in x["words"].numpy()] == row["words"]
        assert x["starts"].numpy().tolist() == row["starts"] and x["text"].numpy().decode() == row["text"]
        np.testing.assert_array_equal(np.array(jsonl[record_id]["word_vectors"], np.float32).reshape(vectors.shape),
                                      vectors)
        assert jsonl[record_id]["words"] == row["words"] and jsonl[record_id]["ends"] == row["ends"]
    assert parquet["empty"]["words"] == [] and records["empty"]["word_vectors"].shape == (0,)
    assert records["empty"]["vector_size"].numpy() == width  # so even no words reshape to [0, width]


def test_beam_is_imported_only_when_used_and_its_absence_says_what_to_install(monkeypatch):
    code = ("import sys, importlib, bert_tf; importlib.import_module('bert_tf.cli.main').build_parser(); "
            "print('apache_beam' in sys.modules, 'pyarrow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["False", "False"]

    from bert_tf.beam import require_beam

    monkeypatch.setitem(sys.modules, "apache_beam", None)
    with pytest.raises(ImportError, match=r'needs Apache Beam .*pip install "bert_tf\[beam\]"'):
        require_beam()


class _FailingModel:
    """Stands for the embedder: `options` as it has them, `iter_batches` raising `error` every time."""

    def __init__(self, error):
        self.error, self.calls = error, 0

    def options(self, options):
        return options

    def iter_batches(self, *args, **kwargs):
        self.calls += 1
        raise self.error


def _wrapped_interrupt():
    try:
        raise KeyboardInterrupt()
    except KeyboardInterrupt as interrupt:  # what TensorFlow or Beam may turn a Ctrl-C met inside them into
        return RuntimeError(f"KeyboardInterrupt [while running 'Embed'] {interrupt}")


def test_an_interruption_inside_a_batch_ends_the_run_instead_of_a_retry_one_by_one():
    """A Ctrl-C or SIGTERM that reaches the handler as an ordinary exception must not be taken for a bad
    batch: retrying its texts one at a time would run the whole corpus to the end, and the run would
    publish its outputs and exit 0 after the user stopped it."""
    batch = [(str(i), "a cat") for i in range(3)]
    for error in (_wrapped_interrupt(), RuntimeError("cancelled"), ValueError("x")):
        cause = KeyboardInterrupt() if str(error) == "cancelled" else None
        if cause is not None:
            error.__cause__ = cause
        model = _FailingModel(error)
        if isinstance(error, ValueError):  # an ordinary failure: each text retried, each a dead letter
            out = BertModelHandler(EmbedSpec()).run_inference(batch, model)
            assert model.calls == 1 + len(batch) and all(type(o).__name__ == "DeadLetter" for o in out)
        else:
            with pytest.raises(RuntimeError):
                BertModelHandler(EmbedSpec()).run_inference(batch, model)
            assert model.calls == 1  # not retried


def test_an_interruption_python_dropped_still_stops_the_next_batch(monkeypatch):
    """A Ctrl-C recorded by the CLI's handler but whose exception was dropped (it landed in a finaliser)
    stops the run at the next batch, before the model is called."""
    from bert_tf import interrupts

    monkeypatch.setattr(interrupts, "_received", [])
    model = _FailingModel(ValueError("never reached"))
    handler = BertModelHandler(EmbedSpec())
    interrupts._received.append(signal.SIGINT)  # as `install_handlers`' Ctrl-C handler records it
    with pytest.raises(KeyboardInterrupt):
        handler.run_inference([("0", "a cat")], model)
    assert model.calls == 0
    interrupts._received[:] = [signal.SIGTERM]
    with pytest.raises(interrupts.Terminated):
        handler.run_inference([("0", "a cat")], model)
