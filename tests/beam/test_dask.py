"""`beam-embed --runner DaskRunner` on a real Dask scheduler and two worker processes on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytest.importorskip("distributed")

from bert_tf.beam import EmbedSpec  # noqa: E402
from bert_tf.beam import runners  # noqa: E402
from bert_tf.beam.local_dask import local_dask_cluster  # noqa: E402
from bert_tf.beam.pipeline import embed_corpus, run_files  # noqa: E402
from bert_tf.cli.main import main  # noqa: E402
from bert_tf.testing import assert_float32_close, encoder_bound  # noqa: E402
from tests.beam.conftest import read_dead_letters, read_parquet  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = "the bank of a river holds money and a mouse is a small rodent animal".split()


def _env():
    """The workers import this checkout's bert_tf; TensorFlow stays quiet in their logs."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": ROOT if not path else f"{ROOT}{os.pathsep}{path}",
            "TF_CPP_MIN_LOG_LEVEL": "2", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with local_dask_cluster(tmp_path_factory.mktemp("dask"), workers=2, threads=1, env=_env()) as c:
        yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, awkward_file):
    """Three files: two of plain sentences and the awkward one (two dead letters in it)."""
    import random

    rng = random.Random(5)
    folder = tmp_path_factory.mktemp("dask-corpus")
    for n in range(2):
        lines = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 14))) for _ in range(25)]
        (folder / f"part{n}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "part2.txt").write_bytes(awkward_file[0].read_bytes())
    return folder


@pytest.fixture(scope="module")
def direct_run(tmp_path_factory, corpus, beam_checkpoint):
    prefix = tmp_path_factory.mktemp("direct") / "corpus"
    embed_corpus(str(corpus / "*.txt"), str(prefix), EmbedSpec(str(beam_checkpoint)))
    return prefix


def _assert_same_rows(prefix, reference_prefix, embedder):
    one, two = read_parquet(reference_prefix), read_parquet(prefix)  # each fails on an id seen twice
    assert sorted(one) == sorted(two) and len(one) == 57
    assert sorted(read_dead_letters(reference_prefix)) == sorted(read_dead_letters(prefix))
    assert not set(two) & set(read_dead_letters(prefix))
    for record_id, row in one.items():
        assert two[record_id]["words"] == row["words"] and two[record_id]["starts"] == row["starts"]
        assert two[record_id]["text"] == row["text"]
        assert two[record_id]["fields"] == row["fields"] == json.dumps({"file": record_id.split(":")[0]
                                                                         .rsplit("/", 1)[1]})
        for key in ("word_vectors", "sentence_vector"):
            reference = np.array(row[key], np.float32)
            assert_float32_close(np.array(two[record_id][key], np.float32), reference,
                                 encoder_bound(embedder.config, reference) if reference.size else 1.0, record_id)


def test_short_runner_names_and_their_options_without_a_cluster():
    assert runners.runner_name(["--runner", "DaskRunner", "--x=1"]) == "DaskRunner"
    assert runners.runner_name(["--runner=dask"]) == "dask"
    assert runners.is_dask(["--runner=dask"]) and runners.is_dask(["--runner", runners.DASK])
    assert not runners.is_dask(["--runner", "DataflowRunner"]) and not runners.is_dask([])
    args = runners.prepare_pipeline_args(["--runner", "DaskRunner", "--dask_client_address", "127.0.0.1:1"])
    assert args == ["--runner", runners.DASK, "--dask_client_address", "127.0.0.1:1"]
    from bert_tf.beam.pipeline import check_pipeline_args

    check_pipeline_args(args)  # the Dask options are known once prepared
    assert runners.prepare_pipeline_args(["--runner=FlinkRunner"]) == ["--runner=FlinkRunner"]


def test_num_shards_the_dask_runner_cannot_keep_is_refused_before_any_work(tmp_path, corpus, beam_checkpoint,
                                                                           capsys):
    code = main(["beam-embed", "--input", str(corpus / "*.txt"), "--output", str(tmp_path / "out"),
                 "--checkpoint", str(beam_checkpoint), "--num-shards", "2", "--runner", "DaskRunner",
                 "--dask_client_address", "127.0.0.1:1"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "--num-shards 2: on the DaskRunner a run writes one shard per input file (3 here)" in err
    assert not list(tmp_path.iterdir())


def test_a_scheduler_that_is_not_there_is_one_line(tmp_path, corpus, beam_checkpoint, capsys):
    from bert_tf.beam.local_dask import free_port

    code = main(["beam-embed", "--input", str(corpus / "*.txt"), "--output", str(tmp_path / "out"),
                 "--checkpoint", str(beam_checkpoint), "--runner", "DaskRunner",
                 "--dask_client_address", f"127.0.0.1:{free_port()}", "--dask_connection_timeout", "3"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1, err
    assert err.startswith("bert-tf: error: cannot reach the Dask scheduler (") and "--dask_client_address" in err
    assert not list(tmp_path.iterdir())  # no output, no staging folder


@pytest.mark.slow
def test_the_dask_runner_gives_the_direct_runners_rows_and_counts(tmp_path, cluster, corpus, direct_run,
                                                                   beam_checkpoint, embedder, capfd, monkeypatch):
    # Relative paths, as a user types them; the workers run in another folder.
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    prefix = here / "dask"
    code = main(["beam-embed", "--input", os.path.relpath(corpus / "*.txt"), "--output", "dask", "--checkpoint",
                 os.path.relpath(beam_checkpoint), "--runner", "DaskRunner", "--dask_client_address",
                 cluster.address])
    err = capfd.readouterr().err
    assert code == 0, err + cluster.logs()
    lines = [line for line in err.splitlines() if line.strip()]
    assert not [line for line in lines if not line.startswith("bert-tf:")], err  # no Dask or Beam noise
    assert lines[-1].startswith("bert-tf: wrote 57 text(s) to dask-00000-of-00003.parquet ... "
                                "dask-00002-of-00003.parquet (3 files) (parquet); 2 to dead letters"), lines[-1]
    _assert_same_rows(prefix, direct_run, embedder)
    manifest = json.load(open(f"{prefix}-manifest.json"))
    rows = read_parquet(prefix)
    assert manifest["counts"] == {"embedded": 57, "dead_letters": 2,
                                  "words": sum(len(r["words"]) for r in rows.values())}  # counted by the tasks
    assert {d["reason"].split(" (")[0] for d in read_dead_letters(prefix).values()} == {"not valid UTF-8"}
    assert not [n for n in os.listdir(here) if n.startswith(".")]  # no staging folder left


@pytest.mark.slow
def test_beams_dask_runner_still_mixes_tagged_outputs(cluster, tmp_path):
    """The runner bug `bert_tf.beam.on_dask` works around; if this fails, Beam fixed it (see docs/corpus.md)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    def split(x):
        yield beam.pvalue.TaggedOutput("odd", x) if x % 2 else x

    def touch(x, folder=str(tmp_path)):
        open(os.path.join(folder, f"odd-{x}"), "w").close()

    options = PipelineOptions(runners.prepare_pipeline_args(["--runner", "DaskRunner",
                                                             f"--dask_client_address={cluster.address}"]))
    with beam.Pipeline(options=options) as p:
        out = p | beam.Create(range(4)) | beam.FlatMap(split).with_outputs("odd", main="even")
        out.odd | beam.Map(touch)
    p.result.client.close()
    assert sorted(os.listdir(tmp_path)) == ["odd-0", "odd-1", "odd-2", "odd-3"]  # the even ones too


@pytest.mark.slow
def test_a_worker_killed_mid_run_loses_nothing_and_leaves_no_half_output(tmp_path, corpus, direct_run,
                                                                        beam_checkpoint, embedder):
    """SIGKILL one of two workers while it embeds: the run completes on the other with every record,
    or fails in one line with nothing under the final names; never a half-written output."""
    with local_dask_cluster(tmp_path / "cluster", workers=2, threads=1, env=_env()) as cluster:
        from distributed import Client

        prefix = tmp_path / "out" / "corpus"
        prefix.parent.mkdir()
        run = subprocess.Popen([sys.executable, "-m", "bert_tf", "beam-embed", "--input", str(corpus / "*.txt"),
                                "--output", str(prefix), "--checkpoint", str(beam_checkpoint),
                                "--runner", "DaskRunner", "--dask_client_address", cluster.address],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(), start_new_session=True)
        try:
            pids = cluster.worker_pids()
            killed = None
            with Client(cluster.address, timeout=30) as client:
                deadline = time.monotonic() + 240
                while killed is None and time.monotonic() < deadline and run.poll() is None:
                    busy = [addr for addr, tasks in client.processing().items() if tasks]
                    if busy:
                        killed = pids[busy[0]]
                        os.kill(killed, signal.SIGKILL)
                    time.sleep(0.05)
            assert killed is not None, "no worker was ever busy: the run never reached the cluster"
            out, err = run.communicate(timeout=300)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
                run.wait()
        lines = [line for line in err.decode().splitlines() if line.strip()]
        print(f"killed worker pid {killed}; the run exited {run.returncode}: {lines[-1:]}")
        if run.returncode == 0:
            _assert_same_rows(prefix, direct_run, embedder)
            assert lines[-1].startswith("bert-tf: wrote 57 text(s)")
        else:
            assert run.returncode == 1 and len(lines) == 1 and lines[0].startswith("bert-tf: error:"), lines
            assert run_files(str(prefix)) == []
        assert not [n for n in os.listdir(prefix.parent) if n.startswith(".")]
