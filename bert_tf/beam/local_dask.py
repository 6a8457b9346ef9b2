"""A real Dask cluster on this machine: `dask scheduler` and `dask worker` processes on 127.0.0.1.

What the tests and the benchmark run `beam-embed --runner DaskRunner` against, and
the same commands a user starts by hand (docs/corpus.md). Each process runs in its
own session, so that stopping it stops what it started; their logging goes to files
in `log_dir`, never to the terminal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


@dataclasses.dataclass
class LocalDaskCluster:
    """A running local cluster: its scheduler address and its processes (scheduler first)."""

    address: str
    processes: list[subprocess.Popen]
    log_dir: Path

    def worker_pids(self) -> dict[str, int]:
        """`{worker address: pid}` as the scheduler knows them."""
        from distributed import Client

        with Client(self.address, timeout=30) as client:
            return client.run(os.getpid)

    def logs(self) -> str:
        """Every process's log, for a failing test's message."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-4000:]}"
                         for p in sorted(self.log_dir.glob("*.log")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_command() -> list[str]:
    found = shutil.which("dask", path=os.path.dirname(sys.executable))
    return [found] if found else [sys.executable, "-m", "dask"]


def _stop(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # its session: the process and anything it started
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)


@contextlib.contextmanager
def local_dask_cluster(log_dir, *, workers: int = 2, threads: int = 1, env: dict | None = None,
                       startup_timeout: float = 120):
    """Starts a scheduler and `workers` worker processes of `threads` threads; stops them all on exit.

    Workers run without a nanny, so a worker that is killed stays dead (as a lost machine would).

    Args:
        log_dir: folder for the processes' logs (and the workers' scratch space).
        workers, threads: worker processes, and threads in each.
        env: the processes' environment (default: this one); set PYTHONPATH so workers import bert_tf.
        startup_timeout: seconds to wait for every worker to register.

    Yields:
        A `LocalDaskCluster`.

    Raises:
        TimeoutError: the workers did not all register in time (the logs are in the message).
    """
    log_dir = Path(log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    # The scheduler picks its own port and writes its address here: a port chosen for it beforehand could be
    # taken by another process before it binds (a CI run lost both Dask tests to "Address already in use").
    scheduler_file = log_dir / "scheduler.json"
    scheduler_file.unlink(missing_ok=True)
    env = dict(os.environ if env is None else env)
    processes: list[subprocess.Popen] = []
    cluster = LocalDaskCluster("", processes, log_dir)

    def start(name, args):
        with open(log_dir / f"{name}.log", "wb") as log:
            processes.append(subprocess.Popen([*_dask_command(), *args], stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                              cwd=log_dir))

    try:
        start("scheduler", ["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                            "--scheduler-file", str(scheduler_file)])
        deadline = time.monotonic() + startup_timeout
        while True:  # its address, once the scheduler has written the whole file
            with contextlib.suppress(OSError, ValueError, KeyError):
                address = cluster.address = json.loads(scheduler_file.read_text())["address"]
                break
            if time.monotonic() > deadline or processes[0].poll() is not None:
                raise TimeoutError(f"the local Dask scheduler did not start:\n{cluster.logs()}")
            time.sleep(0.1)
        for i in range(workers):
            start(f"worker-{i}", ["worker", address, "--nthreads", str(threads), "--no-nanny", "--no-dashboard",
                                  "--host", "127.0.0.1", "--name", f"worker-{i}", "--death-timeout", "60",
                                  "--local-directory", str(log_dir / f"worker-{i}")])
        from distributed import Client

        while True:
            try:
                with Client(address, timeout=10) as client:
                    client.wait_for_workers(workers, timeout=max(deadline - time.monotonic(), 1))
                break
            except (OSError, TimeoutError) as e:
                if time.monotonic() > deadline or any(p.poll() is not None for p in processes):
                    raise TimeoutError(f"the local Dask cluster did not start ({e}):\n{cluster.logs()}") from None
                time.sleep(1)
        yield cluster
    finally:
        for process in reversed(processes):
            _stop(process)
