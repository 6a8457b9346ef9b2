"""No TensorFlow log line reaches the user's terminal unless asked for (`bert_tf.runtime`).

Each test runs a fresh interpreter, because TensorFlow reads its log level once, when it loads.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

#: absl's prefix of a TensorFlow C++ log line: severity, date (0000 before absl is initialised), time.
TF_LOG_LINE = re.compile(r"^[IWEF]\d{4} ", re.MULTILINE)

#: The oneDNN fallback that float16 logs as an error on AVX-512 CPUs without AVX512_FP16 (TensorFlow's
#: DataTypeUnsupportedWarning), made here on any CPU: the same C++ LOG(ERROR), after TensorFlow loaded.
PROBE = ("from bert_tf.runtime import tf\n"
         "tf.print('oneDNN supports DT_HALF only on platforms with AVX-512 (probe)',"
         " output_stream=tf.compat.v1.logging.error)\n"
         "try:\n    tf.io.read_file('/nonexistent/bert_tf_probe')\nexcept tf.errors.NotFoundError:\n    pass\n")

EMBED = ("import sys\nfrom bert_tf import BertEmbedder\n"
         "for _ in range(2):\n"
         "    embedder = BertEmbedder.from_checkpoint(sys.argv[1], precision='float16')\n"
         "    assert embedder.sentence_vectors(['a b c', 'd']).shape[0] == 2\n")


#: gRPC, which Beam's runners load, logging an error of its own: a port it cannot bind ("E... add_port.cc").
GRPC_PROBE = ("import concurrent.futures\nimport bert_tf.beam\nimport grpc\n"
              "server = grpc.server(concurrent.futures.ThreadPoolExecutor(1))\n"
              "try:\n    server.add_insecure_port('256.1.1.1:99999')\nexcept RuntimeError:\n    pass\n")


def user_environment(**extra) -> dict:
    """The environment of a user who set nothing (the test session sets TensorFlow's log level itself)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "BERT_TF_VERBOSE_TF", "ONEDNN_MAX_CPU_ISA")}
    return {**env, **extra}


def run(code: str, *args, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          timeout=600, env=user_environment(**env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_tensorflow_errors_and_warnings_after_the_import_stay_off_stderr():
    proc = run(PROBE)
    assert not TF_LOG_LINE.search(proc.stderr), proc.stderr
    assert "probe" not in proc.stderr


def test_verbose_shows_what_tensorflow_logs():
    proc = run(PROBE, BERT_TF_VERBOSE_TF="1")
    assert re.search(r"^E\d{4} .*DT_HALF only on platforms with AVX-512 \(probe\)", proc.stderr, re.MULTILINE)


def test_grpcs_errors_stay_off_stderr_unless_verbose():
    """A Ctrl-C that stops a Beam pipeline while gRPC's poller runs made it log "epoll_wait error: Bad file
    descriptor" under the CLI's one line; the probe is another of its error lines, made on purpose."""
    pytest.importorskip("apache_beam")
    assert not TF_LOG_LINE.search(run(GRPC_PROBE).stderr)
    assert re.search(r"^E\d{4} .*add_port", run(GRPC_PROBE, BERT_TF_VERBOSE_TF="1").stderr, re.MULTILINE)
    # A program that imports bert_tf to embed, not Beam, keeps its own gRPC services' errors.
    library_only = GRPC_PROBE.replace("import bert_tf.beam", "import bert_tf.runtime")
    assert re.search(r"^E\d{4} .*add_port", run(library_only).stderr, re.MULTILINE)


def test_float16_prints_no_tensorflow_line_and_bert_tfs_own_warning_at_most_once(make_checkpoint):
    from bert_tf.model.hardware import float16_missing

    directory, _ = make_checkpoint()
    proc = run(EMBED, directory)
    assert not TF_LOG_LINE.search(proc.stderr), proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if "precision='float16'" in line]
    # Where oneDNN computes float16 (AVX512_FP16, AMX-FP16) there is nothing to say; elsewhere one warning.
    assert len(warnings) == (0 if float16_missing() is None else 1), proc.stderr


def test_the_cli_float16_prints_no_tensorflow_line(make_checkpoint):
    directory, _ = make_checkpoint()
    proc = run("from bert_tf.cli import main; raise SystemExit(main())", "embed", "--checkpoint", directory,
               "--precision", "float16", "a b c")
    assert proc.stdout.count("\n") == 1
    assert not TF_LOG_LINE.search(proc.stderr), proc.stderr


def test_quiet_stderr_from_threads_at_once_gives_fd_2_back(monkeypatch):
    """Model calls run on several threads (`bert_tf.streams`); fd 2 is one per process, so overlapping
    quiet sections must not restore each other's /dev/null: afterwards fd 2 is what it was."""
    import threading
    import time

    from bert_tf.runtime import quiet_stderr

    monkeypatch.delenv("BERT_TF_VERBOSE_TF", raising=False)
    before = os.fstat(2)
    barrier = threading.Barrier(6)

    def quiet(k):
        barrier.wait()
        with quiet_stderr():
            time.sleep(0.01 * (k % 3))

    threads = [threading.Thread(target=quiet, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    after = os.fstat(2)
    assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
