"""Importing bert_tf's Beam code prints nothing: Beam's root-logger warnings stay off the terminal."""

from __future__ import annotations

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_importing_the_beam_records_prints_nothing_and_installs_no_root_handler():
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    code = "import logging, bert_tf.beam.records; print(len(logging.getLogger().handlers))"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # was "WARNING:root:apitools not found, ..."
    assert done.stdout.strip() == "0"


def test_beam_embed_help_names_what_the_project_ships(capsys):
    import pytest

    from bert_tf.cli.main import main

    with pytest.raises(SystemExit):
        main(["beam-embed", "--help"])
    out = capsys.readouterr().out
    assert "setup.py" not in out and "--extra_package dist/bert_tf-" in out  # the project has no setup.py
