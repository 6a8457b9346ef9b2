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


def test_an_int8_command_splits_the_pools_unless_told_otherwise():
    """The CLI knows the precision before TensorFlow starts: int8 gets two pools of its own on two cores."""
    f = streams.process_streams_for
    assert f(None, "int8", {}, 2) == f("auto", "int8", {}, 2) == streams.AUTO_STREAMS == 2
    assert f(None, "int8", {}, 1) is None  # one core: nothing to split
    assert f(3, "int8", {}, 2) == 3 and f(1, "int8", {}, 2) == 1 and f(2, "float32", {}, 2) == 2  # asked for
    assert f(None, "int8", {"BERT_TF_STREAMS": "1"}, 2) is None  # the user's environment wins
    for precision in ("float32", "bfloat16", "auto", None):  # a lone call keeps every core
        assert f(None, precision, {}, 2) is None


def test_the_cli_sets_the_pools_before_tensorflow_starts(monkeypatch):
    from bert_tf.cli.main import build_parser, parse_args, size_thread_pools

    monkeypatch.setattr(streams, "cores", lambda: 2)
    parser = build_parser()
    for argv, expected in ((["embed", "--precision", "int8", "x"], "2"), (["embed", "x"], None),
                           (["embed", "--streams", "3", "x"], "3"), (["index", "build", "--precision", "int8",
                                                                      "--input", "a.txt", "--out", "idx"], "2"),
                           (["export", "--precision", "int8"], None)):  # no model calls to run at once
        monkeypatch.delenv("BERT_TF_STREAMS", raising=False)
        size_thread_pools(parse_args(parser, argv))
        assert os.environ.get("BERT_TF_STREAMS") == expected, argv
    monkeypatch.setenv("BERT_TF_STREAMS", "1")
    size_thread_pools(parse_args(parser, ["embed", "--precision", "int8", "x"]))
    assert os.environ["BERT_TF_STREAMS"] == "1"


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
