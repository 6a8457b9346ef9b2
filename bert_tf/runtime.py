"""Import TensorFlow once, quietly, with the settings this project wants.

TensorFlow prints several lines of C++ start-up logging (CUDA probing, absl
initialisation) straight to file descriptor 2 before any Python logging exists,
so `TF_CPP_MIN_LOG_LEVEL` alone does not silence it. We point fd 2 at
/dev/null for the duration of the import and of device initialisation only.

After that, TensorFlow's C++ logging obeys `TF_CPP_MIN_LOG_LEVEL`, read once when
TensorFlow loads: 3 keeps its errors off the terminal too. They are not ours to
show: a kernel's fallback (`oneDNN supports DT_HALF only on platforms with
AVX-512`, logged as an error on the first float16 matmul of a CPU without
AVX512_FP16) is advice for TensorFlow's developers, and bert_tf says what it
means for the user itself (`bert_tf.model.precision`). A failing op raises a
Python exception with the same message. Set `BERT_TF_VERBOSE_TF=1` (the CLI's
`--verbose` does) to see everything TensorFlow logs.

oneDNN is enabled by default here: its fused matmul kernels are faster on the
CPUs this project runs on (bench/README.md has the measurements). Both settings
are `setdefault`, so a user's own environment wins, as it does for the thread pools
sized for `BERT_TF_STREAMS` (`bert_tf.streams`), which TensorFlow reads when it starts.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading

from bert_tf.logs import VERBOSE_ENV, quiet_native_logs
from bert_tf.streams import configure_thread_pools

# TF_CPP_MIN_LOG_LEVEL=3 keeps TensorFlow's C++ ERROR lines off the terminal too (e.g. oneDNN's "E0000 ...
# supports DT_HALF only on platforms with AVX-512" for float16, which is a notice, not a failure: real failures
# raise in Python); with --verbose (BERT_TF_VERBOSE_TF=1) TensorFlow logs as it would on its own.
quiet_native_logs("tensorflow")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
#: The streams this process's intra-op and inter-op pools are sized for (`BERT_TF_STREAMS`; 1: TensorFlow's own).
STREAMS = configure_thread_pools()


#: fd 2 is one per process: overlapping `quiet_stderr`s from two threads (model calls run at once,
#: `bert_tf.streams`) would restore each other's /dev/null, so they take turns.
_STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def quiet_stderr():
    if os.environ.get(VERBOSE_ENV) == "1":
        yield
        return
    with _STDERR_LOCK:
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real fd 2 (embedded interpreters, some notebooks)
            yield
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(devnull)


with quiet_stderr():
    import tensorflow as tf  # noqa: E402
    import keras  # noqa: E402  (Keras 3, TensorFlow backend)

    tf.get_logger().setLevel("ERROR")
    tf.config.list_logical_devices("CPU")  # forces device initialisation while fd 2 is muted

__all__ = ["keras", "tf"]
