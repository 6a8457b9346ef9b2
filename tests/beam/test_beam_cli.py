"""`bert-tf beam-embed`'s arguments: a mistake is answered in one line before Beam and TensorFlow load."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Runs the CLI in a fresh interpreter and reports which heavy modules it had imported when it ended.
WRAPPER = """
import sys
from bert_tf.cli.main import main
code = main(sys.argv[1:])
print("IMPORTED", sorted(m for m in ("tensorflow", "apache_beam") if m in sys.modules))
sys.exit(code)
"""


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (["--input", "missing-*.txt", "--output", "corpus"], "bert-tf: error: --input missing-*.txt matches no file"),
    (["--input", "in.txt", "--output", "no/such/folder/corpus"], "the folder no/such/folder does not exist"),
    (["--input", "in.txt", "--output", "."], "bert-tf: error: --output . is a folder"),
    (["--input", "in.txt", "--output", "corpus", "--num-shards", "-1"], "--num-shards must be 0"),
    (["--input", "in.txt", "--output", "corpus", "-x"], "unknown option -x"),
], ids=["no_input", "no_output_folder", "output_folder", "num_shards", "short_option"])
def test_a_bad_argument_is_one_line_before_beam_and_tensorflow(tmp_path, args, message):
    (tmp_path / "in.txt").write_text("A mouse.\n")
    done = subprocess.run([sys.executable, "-c", WRAPPER, "beam-embed", *args], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], done.stderr
    assert done.stdout.strip() == "IMPORTED []"


def test_importing_the_records_prints_nothing():
    """Beam's module-level `logging.warning("apitools not found ...")` must not reach a user's terminal."""
    done = subprocess.run([sys.executable, "-c", "import logging, bert_tf.beam.records\n"
                           "assert not logging.getLogger().handlers  # the user's basicConfig still works"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
