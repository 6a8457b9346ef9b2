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
    assert stated and stated.group(1) == measured.group(1) == "0.9994", text
    assert re.search(rf"about {re.escape(measured.group(1))} cosine", " ".join(precision.__doc__.split()))
