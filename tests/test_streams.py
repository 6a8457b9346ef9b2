"""bert_tf.streams: the `streams` value checked once, and TensorFlow's pools sized for it before TensorFlow starts."""

import os
import subprocess
import sys

import pytest

from bert_tf import streams
from bert_tf.errors import InvalidValue


@pytest.mark.parametrize("value, expected", [("auto", "auto"), (1, 1), (3, 3), ("2", 2), (" 4 ", 4)])
def test_auto_or_a_positive_count(value, expected):
    assert streams.check_streams(value) == expected


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "two", "", None, "0"])
def test_anything_else_is_one_clear_error(value):
    with pytest.raises(InvalidValue, match=r"^streams must be 'auto' or a positive integer .*; got "):
        streams.check_streams(value)


def test_the_process_count_comes_from_the_environment_else_the_default():
    assert streams.process_streams({}) == streams.DEFAULT_STREAMS == 1
    assert streams.process_streams({"BERT_TF_STREAMS": "auto"}) == 1
    assert streams.process_streams({"BERT_TF_STREAMS": "2"}) == 2
    with pytest.raises(InvalidValue, match="BERT_TF_STREAMS must be 'auto' or a positive integer"):
        streams.process_streams({"BERT_TF_STREAMS": "many"})


def test_auto_is_the_process_count_else_two_calls_on_the_shared_pools_where_there_are_two_cores(monkeypatch):
    monkeypatch.setattr(streams, "cores", lambda: 2)
    assert streams.auto_streams({}) == streams.auto_streams({"BERT_TF_STREAMS": "auto"}) == streams.AUTO_STREAMS == 2
    assert streams.auto_streams({"BERT_TF_STREAMS": "1"}) == 1 and streams.auto_streams({"BERT_TF_STREAMS": "3"}) == 3
    env = {}
    assert streams.configure_thread_pools(env) == 1 and env == {}  # the two share TensorFlow's own pools
    monkeypatch.setattr(streams, "cores", lambda: 1)
    assert streams.auto_streams({}) == 1
    with pytest.raises(InvalidValue, match="BERT_TF_STREAMS must be 'auto' or a positive integer"):
        streams.auto_streams({"BERT_TF_STREAMS": "0"})


def test_the_pools_are_shared_out_and_a_users_own_setting_wins(monkeypatch):
    monkeypatch.setattr(streams, "cores", lambda: 8)
    env = {"BERT_TF_STREAMS": "4"}
    assert streams.configure_thread_pools(env) == 4
    assert env["TF_NUM_INTRAOP_THREADS"] == "2" and env["TF_NUM_INTEROP_THREADS"] == "8"
    env = {"BERT_TF_STREAMS": "16", "TF_NUM_INTRAOP_THREADS": "3"}
    streams.configure_thread_pools(env)
    assert env["TF_NUM_INTRAOP_THREADS"] == "3" and env["TF_NUM_INTEROP_THREADS"] == "16"  # at least one each
    env = {}
    assert streams.configure_thread_pools(env) == 1 and env == {}  # one stream: TensorFlow's own defaults
    assert streams.threads_per_stream(3, 2) == 1 and streams.threads_per_stream(2, 16) == 8


@pytest.mark.slow
def test_a_process_started_with_streams_sizes_tensorflows_pools_before_it_starts():
    code = ("import os, bert_tf.runtime as r; "
            "print(r.STREAMS, os.environ['TF_NUM_INTRAOP_THREADS'], os.environ['TF_NUM_INTEROP_THREADS'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_NUM_")}
    out = subprocess.run([sys.executable, "-c", code], env={**env, "BERT_TF_STREAMS": "2"}, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    count, intra, inter = out.stdout.split()
    assert count == "2" and int(intra) == max(1, streams.cores() // 2) and int(inter) >= 2
