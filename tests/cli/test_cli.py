"""The `bert-tf` command line, run as a real subprocess."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.testing import assert_float32_close, encoder_bound

BERT_TF = shutil.which("bert-tf", path=os.path.dirname(sys.executable)) or "bert-tf"

SEEDS = ["A mouse is a rodent animal.", "A mouse is a computer device.",
         "A rat is an animal that lives in the sewers.", "A computer has a keyboard as an input device."]


def run(*args, input=None, env=None, check=True):
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([BERT_TF, *map(str, args)], input=input, capture_output=True, env=full_env,
                          timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]!r}\nstderr: {proc.stderr[-4000:]!r}")
    return proc


@pytest.fixture(scope="module")
def embedder(minilm_checkpoint):
    return BertEmbedder.from_checkpoint(minilm_checkpoint)


def assert_same(embedder, written, ours, what):
    """What the command wrote equals the Python API to float32 rounding (another process, other batches)."""
    ours = np.asarray(ours)
    return assert_float32_close(np.asarray(written, np.float32), ours, encoder_bound(embedder.config, ours), what)


def test_help_lists_every_command_with_an_example():
    out = run("--help").stdout.decode()
    for command in ("embed", "similarity", "plot", "info", "download", "convert", "export", "demo", "beam-embed",
                    "index", "search", "senses", "neighbors"):
        assert command in out
        sub = run(command, "--help").stdout.decode()
        assert "example" in sub
    module = subprocess.run([sys.executable, "-m", "bert_tf", "--help"], capture_output=True, check=True)
    assert b"embed" in module.stdout


def test_embed_file_to_jsonl_equals_the_python_api(tmp_path, minilm_checkpoint, embedder):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SEEDS) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = run("embed", "--checkpoint", minilm_checkpoint, "--input", src, "--output", out)
    assert b"wrote 4 line(s)" in proc.stderr and proc.stdout == b""
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    expected = embedder.embed_words(SEEDS)
    sentences = embedder.sentence_vectors(SEEDS)
    assert [r["line"] for r in records] == [1, 2, 3, 4]
    for record, words, sentence, text in zip(records, expected, sentences, SEEDS):
        assert record["text"] == text
        assert [w["text"] for w in record["words"]] == [w.text for w in words]
        assert [(w["start"], w["end"]) for w in record["words"]] == [(w.start, w.end) for w in words]
        assert_same(embedder, [w["vector"] for w in record["words"]], np.stack([w.vector for w in words]),
                    f"JSON Lines word vectors of {text!r}")
        assert_same(embedder, record["sentence_vector"], sentence, f"JSON Lines sentence vector of {text!r}")


def test_embed_to_npz_equals_the_python_api(tmp_path, minilm_checkpoint, embedder):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SEEDS), encoding="utf-8")  # no final newline
    out = tmp_path / "out.npz"
    run("embed", "--checkpoint", minilm_checkpoint, "-i", src, "-o", out, "--dim", 100,
        "--sentence-strategy", "cls", "--sentence-layer", -1)
    data = np.load(out)
    expected = embedder.embed_words(SEEDS, dim=100)
    flat = [w for words in expected for w in words]
    assert_same(embedder, data["word_vectors"], np.stack([w.vector for w in flat]), "npz word vectors")
    assert list(data["word_text"]) == [w.text for w in flat]
    assert list(data["line"]) == [1, 2, 3, 4] and list(data["text"]) == SEEDS
    splits = data["word_splits"]
    assert [splits[i + 1] - splits[i] for i in range(4)] == [len(w) for w in expected]
    assert_same(embedder, data["sentence_vectors"], embedder.sentence_vectors(SEEDS, strategy="cls", layer=-1),
                "npz sentence vectors")
    assert data["word_vectors"].shape == (len(flat), 100)


def test_stdin_to_stdout(minilm_checkpoint, embedder):
    proc = run("embed", "--checkpoint", minilm_checkpoint, input="The river bank.\nA bank loan.\n".encode())
    records = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    assert [r["text"] for r in records] == ["The river bank.", "A bank loan."]
    assert_same(embedder, records[1]["words"][1]["vector"], embedder.embed_words(["A bank loan."])[0][1].vector,
                "stdin to stdout")


def test_awkward_lines_are_reported_not_fatal(tmp_path, minilm_checkpoint):
    # 100,000 characters: 900 words of 110 letters ([UNK] each: over 100 characters) and 10,000 more
    # of ordinary text, far beyond 512 pieces, so the line is embedded in overlapping windows.
    long_line = " ".join(["x" * 110] * 900) + " " + "a" * 9_999
    long_line = long_line[:100_000]
    src = tmp_path / "in.txt"
    src.write_bytes(b"first line\n\n\xff\xfe\x00binary\x80garbage\n" + long_line.encode() + b"\nlast\n")
    out = tmp_path / "out.jsonl"
    proc = run("embed", "--checkpoint", minilm_checkpoint, "-i", src, "-o", out, "--dim", 4)
    stderr = proc.stderr.decode()
    assert "skipped line 3: not valid UTF-8" in stderr and "wrote 4 line(s)" in stderr and "skipped 1" in stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["line"] for r in records] == [1, 2, 4, 5]
    assert records[1]["words"] == []  # the empty line: no words, still a sentence vector
    assert len(long_line) == 100_000
    assert len(records[2]["words"]) == 901 and records[2]["words"][-1]["end"] == len(long_line)
    before = out.read_bytes()
    strict = run("embed", "--checkpoint", minilm_checkpoint, "-i", src, "-o", out, "--strict", "--force", check=False)
    assert strict.returncode == 1 and b"line 3" in strict.stderr and b"Traceback" not in strict.stderr
    assert out.read_bytes() == before  # the failed run left the earlier output as it was


def test_embed_in_bfloat16_equals_the_bfloat16_python_api(tmp_path, minilm_checkpoint):
    """`--precision bfloat16` reaches the model: the same batches give the Python API's bfloat16
    vectors to float32 rounding, which differ from float32 by bfloat16 rounding."""
    src = tmp_path / "in.txt"
    src.write_text("\n".join(SEEDS) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run("embed", "--checkpoint", minilm_checkpoint, "--precision", "bfloat16", "--input", src, "--output", out)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    bf16 = BertEmbedder.from_checkpoint(minilm_checkpoint, precision="bfloat16")
    written = np.concatenate([[w["vector"] for w in r["words"]] for r in records]).astype(np.float32)
    ours = np.concatenate([[w.vector for w in ws] for ws in bf16.embed_words(SEEDS)])
    assert_same(bf16, written, ours, "bfloat16 word vectors, CLI vs API")
    f32 = np.concatenate([[w.vector for w in ws] for ws in BertEmbedder.from_checkpoint(minilm_checkpoint)
                          .embed_words(SEEDS)])
    assert np.abs(written - f32).max() > 10 * encoder_bound(bf16.config, f32)


@pytest.mark.parametrize("args, message", [
    (["embed", "--checkpoint", "/no/such/checkpoint", "hello"], b"does not exist"),
    (["embed", "--input", "/no/such/file.txt", "--checkpoint", "{ckpt}"], b"cannot read /no/such/file.txt"),
    (["embed", "--dim", "100000", "--checkpoint", "{ckpt}", "hello"], b"dim=100000 is larger"),
    (["embed", "--layers=-4,x", "hello"], b"--layers takes comma-separated integers"),
    (["embed", "--frobnicate", "hello"], b"unrecognized arguments: --frobnicate"),
    (["similarity", "--words", "zebra", "--checkpoint", "{ckpt}", "A mouse."], b"in none of the sentences"),
    (["info", "/no/such/checkpoint"], b"does not exist"),
    (["embed", "--precision", "half", "hello"], b"argument --precision: invalid choice: 'half'"),
])
def test_user_errors_are_one_line_without_traceback(minilm_checkpoint, args, message):
    args = [a.replace("{ckpt}", str(minilm_checkpoint)) for a in args]
    proc = run(*args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr and b"Traceback" not in proc.stderr
    assert b"cuda" not in proc.stderr.lower()  # TensorFlow's start-up noise stays off the terminal


@pytest.mark.slow
def test_verbose_shows_the_traceback():
    proc = run("--verbose", "info", "/no/such/checkpoint", check=False)
    assert proc.returncode != 0 and b"Traceback" in proc.stderr


def _png_ok(path: Path, min_size=(300, 200)):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        pixels = np.asarray(image.convert("L"), np.float32)
    assert pixels.std() > 10, "the image is blank"


def test_similarity_prints_the_table_and_saves_a_heatmap(tmp_path, minilm_checkpoint):
    png = tmp_path / "heat.png"
    proc = run("similarity", "--checkpoint", minilm_checkpoint, "--words", "mouse,rat,keyboard", *SEEDS,
               "--plot", png)
    lines = proc.stdout.decode().splitlines()
    header = next(line for line in lines if "mouse@1" in line)
    assert header.split() == ["mouse@1", "mouse@2", "rat@3", "keyboard@4"]
    row = next(line for line in lines if line.startswith("mouse@1 "))
    values = [float(x) for x in row.split()[1:]]
    assert values[0] == 1.0 and values[2] > values[3]  # mouse@1 is closer to rat than to keyboard
    _png_ok(png)


def test_plot_saves_a_pca_projection(tmp_path, minilm_checkpoint):
    src = tmp_path / "bank.txt"
    src.write_text("\n".join([
        "He deposited money at the bank.", "The bank approved the loan.", "The bank raised interest rates.",
        "We sat on the river bank.", "The bank of the stream was muddy.", "Fish swam near the grassy bank.",
    ]))
    png = tmp_path / "bank.png"
    proc = run("plot", "bank", "--checkpoint", minilm_checkpoint, "--input", src, "--out", png)
    assert b"6 occurrences" in proc.stderr
    _png_ok(png)


@pytest.mark.slow
@pytest.mark.slow
def test_memory_stays_flat_on_a_200k_line_input(tmp_path, make_checkpoint):
    """Peak RSS for 200,000 lines is about that for 20,000: the input is streamed, not held."""
    directory, _ = make_checkpoint(hidden_size=16, num_attention_heads=2, num_hidden_layers=4,
                                   intermediate_size=32)
    line = "the mouse is a rat , the cat is a device ."
    code = ("import resource, sys; from bert_tf.cli import main; rc = main(sys.argv[1:]); "
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr); sys.exit(rc)")

    def peak_mb(n):
        src = tmp_path / f"in{n}.txt"
        src.write_text((line + "\n") * n)
        out = tmp_path / f"out{n}.jsonl"
        proc = subprocess.run([sys.executable, "-c", code, "embed", "--checkpoint", str(directory), "-i", str(src),
                               "-o", str(out), "--batch-size", "64", "--no-progress", "--dim", "2"],
                              capture_output=True, check=True, timeout=900)
        assert sum(1 for _ in open(out)) == n
        return int(proc.stderr.decode().split("MAXRSS")[1].split()[0]) / 1024

    small, large = peak_mb(20_000), peak_mb(200_000)
    print(f"peak RSS: 20k lines {small:.0f} MB, 200k lines {large:.0f} MB")
    assert large < small + 100, (small, large)
