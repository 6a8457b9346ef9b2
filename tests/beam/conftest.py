"""Fixtures of the Beam tests: one tiny random checkpoint and one awkward corpus per session."""

from __future__ import annotations

import pytest

pytest.importorskip("apache_beam")
pytest.importorskip("pyarrow")

from bert_tf.testing import write_random_checkpoint  # noqa: E402
from tests.conftest import tiny_config  # noqa: E402

#: Lines that must each come out once, in the output or in the dead letters (None: a dead letter).
LONG = "the bank of the river " * 2273  # 50,006 characters, hundreds of windows
AWKWARD = [
    (b"A mouse is a rodent animal.", True),
    (b"", True),  # an empty line: a row with no words
    (b"caf\xe9 is latin-1", False),  # not UTF-8
    (LONG.encode(), True),
    ("東京は日本の首都です。猫".encode(), True),
    ("tab\there \x01\x7f control\x0b chars\x0c and \x1b[0m".encode(), True),
    (b"ends with a carriage return\r", True),  # a \r\n ending, stripped
    (b"\xed\xa0\x80 an encoded surrogate", False),  # not UTF-8 either
    ("a line separator\u2028inside, and a \r alone".encode(), True),
]


@pytest.fixture(scope="session")
def beam_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("beam") / "tiny"
    write_random_checkpoint(directory, tiny_config(), seed=3)
    return directory


@pytest.fixture(scope="session")
def embedder(beam_checkpoint):
    from bert_tf.embed.embedder import BertEmbedder

    return BertEmbedder.from_checkpoint(beam_checkpoint)


@pytest.fixture(scope="session")
def awkward_file(tmp_path_factory):
    """The awkward corpus as a text file; returns `(path, {id: text or None})`."""
    path = tmp_path_factory.mktemp("corpus") / "awkward.txt"
    raw = b"".join(line + (b"\n" if not line.endswith(b"\r") else b"\n") for line, _ in AWKWARD)
    path.write_bytes(raw)
    expected = {f"{path}:{n}": (line.rstrip(b"\r").decode() if good else None)
                for n, (line, good) in enumerate(AWKWARD, start=1)}
    return path, expected


def read_parquet(prefix) -> dict:
    """`{id: row dict}` of every Parquet shard at `prefix`; fails on a repeated id."""
    import glob

    import pyarrow.parquet as pq

    rows = {}
    for path in sorted(glob.glob(f"{prefix}-[0-9]*-of-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            assert row["id"] not in rows, f"{row['id']} twice in the output"
            rows[row["id"]] = row
    return rows


def read_jsonl_rows(prefix) -> list[dict]:
    """The rows of every `--format jsonl` shard at `prefix`, by the glob docs/corpus.md gives for them (it must
    not match the dead letters)."""
    import glob
    import json

    return [json.loads(line) for path in sorted(glob.glob(f"{prefix}-*-of-*.jsonl"))
            for line in open(path, encoding="utf-8")]


def read_dead_letters(prefix) -> dict:
    """`{id: dead letter dict}` of the dead-letter files at `prefix`; fails on a repeated id."""
    import glob
    import json

    dead = {}
    for path in sorted(glob.glob(f"{prefix}-dead-letters.jsonl")):
        with open(path, encoding="utf-8") as f:
            for line in f:
                letter = json.loads(line)
                assert letter["id"] not in dead, f"{letter['id']} twice in the dead letters"
                dead[letter["id"]] = letter
    return dead


def assert_rows_match_embedder(rows: dict, texts: dict, embedder, options=None):
    """Every row's words, offsets and vectors equal `embedder.iter_embed` on the same texts, to float32 rounding."""
    import numpy as np

    from bert_tf.testing import assert_float32_close, encoder_bound

    ids = sorted(texts)
    reference = list(embedder.iter_embed([texts[i] for i in ids], options))
    for record_id, (words, sentence) in zip(ids, reference):
        row = rows[record_id]
        assert row["text"] == texts[record_id]
        assert row["words"] == [w.text for w in words]
        assert row["starts"] == [w.start for w in words] and row["ends"] == [w.end for w in words]
        assert len(row["word_vectors"]) == len(words)
        if words:
            expected = np.stack([w.vector for w in words])
            got = np.array(row["word_vectors"], np.float32)
            assert_float32_close(got, expected, encoder_bound(embedder.config, expected), f"{record_id} words")
        assert_float32_close(row["sentence_vector"], sentence, encoder_bound(embedder.config, sentence),
                             f"{record_id} sentence")
