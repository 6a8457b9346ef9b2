"""The shared flags' help states bert_tf's own measured figures."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bert_tf.cli.flags import add_precision_argument
from bert_tf.model import precision

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_int8_cosine_in_the_help_is_bert_tfs_measured_mean():
    """The README's measurement (the real model, int8 against float32) is the figure: 0.97 was ONNX
    Runtime's int8, not bert_tf's."""
    parser = argparse.ArgumentParser()
    add_precision_argument(parser)
    text = " ".join(parser.format_help().split())
    measured = re.search(r"int8.*?mean cosine of (0\.\d+) to float32", README.read_text(encoding="utf-8"), re.S)
    assert measured, "README.md no longer states the int8 mean cosine"
    stated = re.search(r"int8 \(.*?about (0\.\d+) mean cosine to float32", text)
    assert stated and stated.group(1) == measured.group(1) == "0.9996", text
    assert re.search(rf"about {re.escape(measured.group(1))} cosine", " ".join(precision.__doc__.split()))


def test_streams_is_checked_by_the_one_checker():
    import pytest

    from bert_tf.cli.flags import parse_streams

    assert parse_streams("2") == 2 and parse_streams("auto") == "auto"
    with pytest.raises(argparse.ArgumentTypeError, match=r"^--streams must be 'auto' or a positive integer"):
        parse_streams("0")


def _embed(args, env):
    import json
    import os
    import subprocess
    import sys

    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TF_NUM_", "BERT_TF_STREAMS"))}, **env}
    proc = subprocess.run([sys.executable, "-m", "bert_tf", "embed", *args], capture_output=True, text=True,
                          env=env, timeout=600)
    return proc, [json.loads(line) for line in proc.stdout.splitlines()] if proc.returncode == 0 else None


def test_embed_with_two_streams_writes_what_one_stream_writes(make_checkpoint):
    """`--streams 2` sizes TensorFlow's pools before it starts (BERT_TF_STREAMS) and runs two calls at once."""
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    texts = [" ".join(["the bank of the river"] * k) for k in range(1, 30)]
    common = ["--checkpoint", str(directory), "--batch-size", "2", "--max-seq-length", "16", *texts]
    one, lines_one = _embed(common, {})
    two, lines_two = _embed(["--streams", "2", *common], {})
    assert one.returncode == two.returncode == 0, (one.stderr, two.stderr)
    assert lines_two == lines_one and len(lines_one) == len(texts)


def test_a_bad_streams_value_is_one_line():
    proc, _ = _embed(["--streams", "many", "hello"], {})
    assert proc.returncode == 2 and "--streams must be 'auto' or a positive integer" in proc.stderr
    proc, _ = _embed(["hello"], {"BERT_TF_STREAMS": "0"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("bert-tf: error: BERT_TF_STREAMS must be 'auto' or a positive integer (model calls "
                                   "run at once); got 0")
