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


def test_our_message_reads_our_lines_and_the_workers():
    from bert_tf.cli.beam import our_message

    assert our_message(b"bert-tf: wrote 2 text(s)\n") == b"wrote 2 text(s)\n"
    assert our_message(b"WARNING:bert_tf:a warning\n") == b"a warning\n"
    assert our_message(b"WARNING:root:apitools not found\n") is None


@pytest.mark.slow
def test_a_warning_is_printed_once_with_two_worker_processes(tmp_path, beam_checkpoint):
    import json
    import shutil

    checkpoint = tmp_path / "odd"
    shutil.copytree(beam_checkpoint, checkpoint)
    config = json.loads((checkpoint / "bert_config.json").read_text())
    (checkpoint / "bert_config.json").write_text(json.dumps({**config, "odd_field": 1}))  # warns on every load
    (tmp_path / "in.txt").write_text("A mouse.\nThe bank.\n")
    done = subprocess.run([sys.executable, "-m", "bert_tf", "beam-embed", "--input", "in.txt", "--output", "corpus",
                           "--checkpoint", "odd", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("bert-tf: ") for line in lines), done.stderr
    assert "ignoring unknown field(s) odd_field" in lines[0] and lines[1].startswith("bert-tf: wrote 2 text(s)")
