#!/usr/bin/env python
"""Fetch a BERT checkpoint into checkpoints/NAME/: a thin wrapper over `bert_tf.cli.download`.

    python scripts/download_checkpoint.py              # Google's BERT-Base uncased
    python scripts/download_checkpoint.py --list       # every known name
    python scripts/download_checkpoint.py all-MiniLM-L6-v2   # built offline

Same options as `bert-tf download`; see `--help`.
"""

import argparse
import os
import sys

# Run from a checkout without installing the package: put the repository root first.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bert_tf.cli import download  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="download_checkpoint.py", description=download.CLI_HELP)
    download.add_arguments(parser)
    return download.run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
