"""bert_tf.runtime: TensorFlow is imported quietly; its C++ logging is the user's only with --verbose."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("verbose, level", [(None, "3"), ("1", "0")])
def test_tensorflows_cpp_errors_are_kept_off_the_terminal_unless_verbose(verbose, level):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "BERT_TF_VERBOSE_TF")}
    if verbose:
        env["BERT_TF_VERBOSE_TF"] = verbose
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    # Level 2 still lets ERROR lines through (oneDNN's float16 "E0000 ... DT_HALF" notice on some CPUs).
    code = "import os, bert_tf.runtime; print(os.environ['TF_CPP_MIN_LOG_LEVEL'])"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == level
    if not verbose:
        assert done.stderr == ""
