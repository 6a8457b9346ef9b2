"""The `bert-tf` command line: sub-commands, their flags, output writers, the similarity table and plots."""

from bert_tf.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
