"""The command line never destroys a user's file, fails in one line, and leaves no debris.

Most checks call `bert_tf.cli.main` in-process on a tiny random checkpoint (fast); the ones
about the process itself (its stdin, stdout, signals) run the `bert-tf` script.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from bert_tf.files import output as fileio
from bert_tf.cli import main

BERT_TF = shutil.which("bert-tf", path=os.path.dirname(sys.executable)) or "bert-tf"


def run(*args, input=None, check=True, **kwargs):
    """Runs the `bert-tf` script; `kwargs` (stdout=..., stderr=...) replace the default capture of both."""
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **kwargs}
    proc = subprocess.run([BERT_TF, *map(str, args)], input=input, env=dict(os.environ), timeout=600, **streams)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout: {proc.stdout[-2000:]!r}\nstderr: {proc.stderr[-4000:]!r}")
    return proc


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random 4-layer checkpoint (hidden 32): enough layers for every default, fast to load."""
    from bert_tf.testing import write_random_checkpoint
    from tests.conftest import tiny_config

    directory = tmp_path_factory.mktemp("ckpt") / "tiny"
    write_random_checkpoint(directory, tiny_config(num_hidden_layers=4))
    return directory


def cli(capsys, *args):
    """Runs `bert-tf ARGS` in this process; returns (exit status, stdout, stderr)."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("bert-tf: error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if "bert-tf-" in p.name or "npz-parts" in p.name)


# ---------------------------------------------------------------------- the input is never the output


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_embed_refuses_an_output_that_is_the_input(tmp_path, capsys, link):
    src = tmp_path / "x.txt"
    src.write_bytes(b"a b\nc d\n")
    out = {"same": src, "symlink": tmp_path / "sym.txt", "hardlink": tmp_path / "hard.txt"}[link]
    if link == "symlink":
        out.symlink_to(src.name)
    elif link == "hardlink":
        os.link(src, out)
    # --force does not help, and a checkpoint that does not exist proves the refusal comes first.
    code, _, err = cli(capsys, "embed", "--checkpoint", tmp_path / "no-such-checkpoint", "--input", src,
                       "--output", out, "--force")
    assert code == 1 and "is the input file" in one_error_line(err)
    assert src.read_bytes() == b"a b\nc d\n"


@pytest.mark.slow
def test_embed_refuses_stdout_appended_to_its_input(tmp_path, tiny):
    src = tmp_path / "x.txt"
    src.write_bytes(b"a b\n")
    with open(src, "ab") as append:
        proc = run("embed", "--checkpoint", tiny, "--input", src, stdout=append, check=False)
    assert proc.returncode == 1 and b"stdout is the input file" in proc.stderr
    assert src.read_bytes() == b"a b\n"


# ---------------------------------------------------------------------- existing outputs: --force, atomic


@pytest.mark.parametrize("command, name", [
    (["embed", "hello", "--output"], "o.jsonl"),
    (["embed", "hello", "--output"], "o.npz"),
    (["similarity", "--words", "a", "a b", "--plot"], "h.png"),
    (["plot", "a", "a b", "a c", "--out"], "p.png"),
])
def test_an_existing_output_is_refused_without_force(tmp_path, capsys, command, name):
    target = tmp_path / name
    target.write_bytes(b"precious")
    code, _, err = cli(capsys, *command, target, "--checkpoint", tmp_path / "no-such-checkpoint")
    assert code == 1 and f"{target} already exists; pass --force to replace it" in one_error_line(err)
    assert target.read_bytes() == b"precious"
    assert debris(tmp_path) == []


def _png(path, software: str | None) -> None:
    from bert_tf.files.figures import pyplot

    plt = pyplot()
    fig = plt.figure(figsize=(1, 1))
    fig.savefig(path, format="png", metadata={"Software": software})
    plt.close(fig)


def _users_files(tmp_path) -> dict:
    """Files a user may have under the name of an output: none of them bert_tf's."""
    import numpy as np

    files = {"notes.jsonl": b'{"id": "1", "text": "a corpus line, not vectors"}\n',
             "data.npz": None, "photo.png": None, "notes.txt": b"precious\n"}
    for name, data in files.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
    np.savez(tmp_path / "data.npz", sentence_vectors=np.ones((2, 3)))
    _png(tmp_path / "photo.png", "matplotlib version3.9")
    return {name: (tmp_path / name).read_bytes() for name in files}


@pytest.mark.parametrize("command, name", [
    (["embed", "hello", "--output"], "notes.jsonl"),
    (["embed", "hello", "--output"], "notes.txt"),
    (["embed", "hello", "--output"], "data.npz"),
    (["similarity", "--words", "a", "a b", "--plot"], "photo.png"),
    (["plot", "a", "a b", "a c", "--out"], "photo.png"),
])
def test_force_keeps_a_file_bert_tf_did_not_write(tmp_path, capsys, tiny, command, name):
    before = _users_files(tmp_path)
    code, _, err = cli(capsys, *command, tmp_path / name, "--checkpoint", tiny, "--force")
    assert code == 1 and "is not a file bert_tf wrote" in one_error_line(err)
    assert {n: (tmp_path / n).read_bytes() for n in before} == before
    assert debris(tmp_path) == []


@pytest.mark.parametrize("command, name", [
    (["embed", "--no-progress", "hello", "--output"], "o.jsonl"),
    (["embed", "--no-progress", "hello", "--output"], "o.npz"),
    (["similarity", "--words", "a", "a b", "--plot"], "h.png"),
    (["plot", "a", "a b", "a c", "--out"], "p.png"),
])
def test_force_replaces_bert_tfs_own_earlier_output(tmp_path, capsys, tiny, command, name):
    from bert_tf.files.targets import is_own_file

    target = tmp_path / name
    assert cli(capsys, *command, target, "--checkpoint", tiny)[0] == 0
    assert is_own_file(target)
    first = target.stat().st_mtime_ns
    code, _, err = cli(capsys, *command, target, "--checkpoint", tiny, "--force")
    assert code == 0, err
    assert target.stat().st_mtime_ns >= first and is_own_file(target) and debris(tmp_path) == []


def test_help_documents_force(capsys):
    for command in ("embed", "similarity", "plot"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        assert "--force" in capsys.readouterr().out
    for command, plot in (("search", False), ("senses", True)):  # search has no --plot to replace
        with pytest.raises(SystemExit):
            main([command, "--help"])
        force = " ".join(capsys.readouterr().out.split("--force ", 1)[1].split())
        assert force.startswith("replace an existing --plot or --projector" if plot else
                                "replace an existing --projector folder (a --projector folder only if bert-tf "
                                "wrote it)"), force


@pytest.mark.parametrize("name", ["o.jsonl", "o.npz"])
def test_a_failed_strict_run_leaves_the_old_output_as_it_was(tmp_path, capsys, tiny, name):
    src = tmp_path / "in.txt"
    src.write_bytes(b"first\nsecond\n\xff broken\nfourth\n")
    target = tmp_path / name
    assert cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "an earlier run", "-o", target)[0] == 0
    earlier = target.read_bytes()
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "-i", src, "-o", target,
                       "--strict", "--force")
    assert code == 1 and "line 3" in one_error_line(err)
    assert target.read_bytes() == earlier
    assert debris(tmp_path) == []


def test_force_replaces_the_output_keeping_its_permissions(tmp_path, capsys, tiny):
    target = tmp_path / "o.jsonl"
    assert cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "old", "-o", target)[0] == 0
    target.chmod(0o640)
    code, _, _ = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "a b", "-o", target, "--force")
    assert code == 0
    assert [json.loads(line)["text"] for line in target.read_text().splitlines()] == ["a b"]
    assert target.stat().st_mode & 0o777 == 0o640 and debris(tmp_path) == []


def test_a_symlinked_output_replaces_the_file_it_points_at(tmp_path, capsys, tiny):
    real = tmp_path / "real.jsonl"
    real.write_text("")  # an empty file holds nothing to lose
    link = tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    code, _, _ = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "a b", "-o", link, "--force")
    assert code == 0 and link.is_symlink()
    assert json.loads(real.read_text())["text"] == "a b"


# ---------------------------------------------------------------------- pipes, FIFOs, stdin


def test_embed_reads_a_fifo_as_a_stream(tmp_path, capsys, tiny):
    fifo = tmp_path / "lines.fifo"
    os.mkfifo(fifo)

    def feed():
        with open(fifo, "wb") as f:
            f.write(b"a b\nc d\n")

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "o.jsonl"
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "--input", fifo, "-o", out)
    writer.join(timeout=60)
    assert code == 0 and "wrote 2 line(s)" in err
    assert [json.loads(line)["text"] for line in out.read_text().splitlines()] == ["a b", "c d"]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["/dev/stdin", "-"])
def test_embed_reads_stdin_given_as_a_path(tiny, source):
    proc = run("embed", "--checkpoint", tiny, "--input", source, "--dim", 2, input=b"a b\nc d\n")
    assert [json.loads(line)["text"] for line in proc.stdout.decode().splitlines()] == ["a b", "c d"]


# ---------------------------------------------------------------------- one line, never a traceback


@pytest.mark.slow
def test_a_full_stdout_is_one_line(tiny):
    with open("/dev/full", "wb") as full:
        proc = run("embed", "--checkpoint", tiny, "hi", stdout=full, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and err.strip() == "bert-tf: error: cannot write stdout: No space left on device"


@pytest.mark.slow
def test_a_closed_stdout_is_one_line(tiny):
    proc = subprocess.run([BERT_TF, "embed", "--checkpoint", str(tiny), "hi"], stderr=subprocess.PIPE,
                          preexec_fn=lambda: os.close(1), timeout=600)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert err.strip() == "bert-tf: error: cannot write stdout: it is closed; give --output FILE"


def _unwritable_folder() -> str:
    """A folder that refuses new files even to root (tests here run as root, where chmod stops nothing)."""
    for folder in ("/sys", "/proc"):
        try:
            fd, path = tempfile.mkstemp(dir=folder)
        except OSError:
            return folder
        os.close(fd)
        os.unlink(path)
    pytest.skip("no folder here refuses writes")


@pytest.mark.parametrize("command, name", [
    (["embed", "--no-progress", "a b", "--output"], "o.jsonl"),
    (["embed", "--no-progress", "a b", "--output"], "o.npz"),
    (["similarity", "--words", "a", "a b", "a c", "--plot"], "h.png"),
    (["plot", "a", "a b", "a c", "--out"], "p.png"),
])
def test_an_unwritable_output_is_one_line_naming_it(capsys, tiny, command, name):
    target = os.path.join(_unwritable_folder(), name)
    code, _, err = cli(capsys, *command, target, "--checkpoint", tiny)
    line = one_error_line(err)
    assert code == 1 and line.startswith(f"bert-tf: error: cannot write {target}: ")
    assert "npz-parts" not in line and "bert-tf-" not in line.split(target)[1]


def test_a_full_output_file_is_one_line(capsys, tiny):
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "a b", "-o", "/dev/full")
    assert code == 1 and one_error_line(err) == "bert-tf: error: cannot write /dev/full: No space left on device"
    assert os.path.exists("/dev/full") and not os.path.isfile("/dev/full")  # written into, not renamed over


@pytest.mark.parametrize("name", ["o.jsonl", "o.npz"])
def test_an_output_in_a_missing_folder_names_the_users_path(tmp_path, capsys, tiny, name):
    target = tmp_path / "missing" / name
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "a b", "-o", target)
    line = one_error_line(err)
    assert code == 1 and line == f"bert-tf: error: cannot write {target}: the folder {target.parent} does not exist"


def test_a_bug_raising_oserror_still_shows_its_traceback(monkeypatch, capsys, tiny):
    from bert_tf import BertEmbedder

    def broken(self, *args, **kwargs):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(BertEmbedder, "embed", broken)
    with pytest.raises(OSError, match="Input/output error"):
        main(["embed", "--checkpoint", str(tiny), "a b"])


# ---------------------------------------------------------------------- no debris


@pytest.mark.slow
def test_sigterm_mid_run_removes_the_npz_parts_and_keeps_the_old_file(tmp_path, tiny):
    src = tmp_path / "big.txt"
    src.write_text("the mouse is a rat , the cat is a device .\n" * 20_000)
    target = tmp_path / "o.npz"
    assert main(["embed", "--checkpoint", str(tiny), "--no-progress", "an earlier run", "-o", str(target)]) == 0
    earlier = target.read_bytes()
    proc = subprocess.Popen([BERT_TF, "embed", "--checkpoint", str(tiny), "--no-progress", "-i", str(src),
                             "-o", str(target), "--force", "--dim", "2"], stderr=subprocess.PIPE)
    def parts_written() -> bool:
        try:
            return any(part.suffix == ".npy" for folder in tmp_path.glob(".*npz-parts*") for part in folder.iterdir())
        except FileNotFoundError:  # the folder went between listing and reading
            return False

    try:
        deadline = time.monotonic() + 300
        while not parts_written():
            assert proc.poll() is None, proc.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # the first batch is written: mid-run
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143 and "Traceback" not in err.decode(), err
    assert target.read_bytes() == earlier
    assert debris(tmp_path) == []


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_run_removes_stale_temporaries_of_dead_processes_only(tmp_path, capsys, tiny):
    dead = _dead_pid()
    stale_dir = tmp_path / f"{fileio.temp_prefix('o.npz', pid=dead)}abcd1234{fileio.DIR_SUFFIX}"
    stale_dir.mkdir()
    (stale_dir / "word_vectors.000000.npy").write_bytes(b"x" * 1000)
    stale_file = tmp_path / f"{fileio.temp_prefix('o.jsonl', pid=dead)}abcd1234{fileio.FILE_SUFFIX}"
    stale_file.write_text("half a line")
    live = tmp_path / f"{fileio.temp_prefix('o.npz', pid=os.getpid())}live0000{fileio.DIR_SUFFIX}"
    live.mkdir()
    unrelated = tmp_path / ".o.npz.something-else.tmp"
    unrelated.write_text("not ours")
    code, _, _ = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "a b", "-o", tmp_path / "o.npz")
    assert code == 0
    assert not stale_dir.exists() and not stale_file.exists()
    assert live.is_dir() and unrelated.exists()  # a live process's work and other names are never touched


def test_stale_temporaries_from_another_host_are_kept(tmp_path):
    dead = _dead_pid()
    ours = tmp_path / f"{fileio.temp_prefix('o.npz', pid=dead)}abcd1234{fileio.DIR_SUFFIX}"
    other = tmp_path / f".o.npz.bert-tf-{dead}-someotherhost.abcd1234{fileio.DIR_SUFFIX}"
    ours.mkdir()
    other.mkdir()
    assert fileio.remove_stale_temps(tmp_path) == [str(ours)]
    assert other.is_dir()


# ---------------------------------------------------------------------- smaller confusions


def test_a_positional_argument_naming_a_file_warns_and_embeds_the_text(tmp_path, capsys, tiny, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("sentences.txt").write_text("a b\n")
    code, out, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "--dim", 2, "sentences.txt")
    assert code == 0 and json.loads(out)["text"] == "sentences.txt"
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--input sentences.txt" in warnings[0]


def test_a_run_where_every_line_was_skipped_fails_and_writes_nothing(tmp_path, capsys, tiny):
    src = tmp_path / "in.txt"
    src.write_bytes(b"\xff\n\xfe\n")
    target = tmp_path / "o.jsonl"
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "-i", src, "-o", target)
    assert code == 1 and "all 2 line(s) of the input were skipped" in one_error_line(err)
    assert not target.exists() and debris(tmp_path) == []


def test_an_empty_input_gives_an_npz_with_every_documented_array(tmp_path, capsys, tiny):
    src = tmp_path / "empty.txt"
    src.write_bytes(b"")
    target = tmp_path / "o.npz"
    code, _, _ = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "-i", src, "-o", target,
                     "--dim", 5)
    assert code == 0
    with np.load(target) as data:
        shapes = {name: (data[name].shape, data[name].dtype.kind) for name in data.files}
    assert shapes == {
        "sentence_vectors": ((0, 32), "f"), "line": ((0,), "i"), "text": ((0,), "U"),
        "word_vectors": ((0, 5), "f"), "word_text": ((0,), "U"), "word_start": ((0,), "i"),
        "word_end": ((0,), "i"), "word_line_index": ((0,), "i"), "word_splits": ((1,), "i"),
    }


def test_lines_without_words_give_word_vectors_of_the_right_width(tmp_path, capsys, tiny):
    src = tmp_path / "blank.txt"
    src.write_bytes(b"\n  \n")
    target = tmp_path / "o.npz"
    code, _, _ = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "-i", src, "-o", target)
    assert code == 0
    with np.load(target) as data:
        assert data["word_vectors"].shape == (0, 32) and data["sentence_vectors"].shape == (2, 32)
        assert list(data["word_splits"]) == [0, 0, 0]


def test_the_npz_suffix_is_matched_in_any_case(tmp_path, capsys, tiny):
    target = tmp_path / "o.NPZ"
    code, _, err = cli(capsys, "embed", "--checkpoint", tiny, "--no-progress", "a b", "-o", target)
    assert code == 0 and "as npz" in err
    with np.load(target) as data:
        assert list(data["text"]) == ["a b"]


@pytest.mark.parametrize("command", [["similarity", "--words", "a"], ["plot", "a", "--out", "p.png"]])
def test_no_sentences_is_a_clear_error(tmp_path, capsys, tiny, command, monkeypatch):
    monkeypatch.chdir(tmp_path)
    src = tmp_path / "empty.txt"
    src.write_text("\n\n")
    code, _, err = cli(capsys, *command, "--checkpoint", tiny, "--input", src)
    assert code == 1 and "no sentences" in one_error_line(err) and "words available" not in err


# ---------------------------------------------------------------------- --force replaces only bert-tf's own

INDEX_WORDS = "river bank water money loan stone tree house".split()
CORPUS = ["river bank water", "money bank loan", "stone tree house", "tree bank river"]
ZIP_NAME = "tiny_L-1_H-16_A-2"


def snapshot(folder: Path) -> dict:
    """Every file and folder below `folder` with its bytes (None for a folder)."""
    return {p.relative_to(folder).as_posix(): (None if p.is_dir() else p.read_bytes())
            for p in sorted(folder.rglob("*"))}


def user_folder(path: Path) -> Path:
    """A folder of the user's: a file, and a subfolder with a file."""
    (path / "sub").mkdir(parents=True, exist_ok=True)
    (path / "notes.txt").write_text("the user's notes")
    (path / "sub" / "data.csv").write_text("1,2\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """What the commands read: a checkpoint, a corpus, an index of it, a Hugging Face folder, a checkpoint zip."""
    import zipfile

    from safetensors.numpy import save_file

    from bert_tf.model.config import BertConfig
    from bert_tf.testing import google_to_hf_weights, random_weights, tiny_vocab, write_random_checkpoint
    from tests.index.test_index_store import write_checkpoint

    root = tmp_path_factory.mktemp("world")
    checkpoint = write_checkpoint(root / "tiny", vocab=["[PAD]", "[UNK]", "[CLS]", "[SEP]", *INDEX_WORDS])
    corpus = root / "corpus.txt"
    corpus.write_text("\n".join(CORPUS) + "\n")
    index = root / "corpus.index"
    assert main(["index", "build", "--input", str(corpus), "--out", str(index), "--checkpoint", str(checkpoint),
                 "--no-progress"]) == 0

    config = BertConfig(vocab_size=200, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64, type_vocab_size=2)
    hf = root / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({**config.to_dict(), "model_type": "bert", "layer_norm_eps": 1e-12}))
    save_file(google_to_hf_weights(random_weights(config), config.num_hidden_layers), str(hf / "model.safetensors"))
    (hf / "vocab.txt").write_text("\n".join(tiny_vocab(config.vocab_size)) + "\n")

    source = root / "zip-source"
    write_random_checkpoint(source, config)
    archive = root / f"{ZIP_NAME}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(source.iterdir()):
            zf.write(path, f"{ZIP_NAME}/{path.name}")
    return {"checkpoint": checkpoint, "corpus": corpus, "index": index, "hf": hf, "zip": archive}


def _case(name, w, tmp, monkeypatch):
    """`(argv, the user's folder, what the one error line says)` for the case `name`."""
    ck = ["--checkpoint", w["checkpoint"]]
    user = user_folder(tmp / "mine")
    if name == "index build --input DIR/corpus.txt --out DIR":  # the case: it deleted DIR
        shutil.copy(w["corpus"], user / "corpus.txt")
        return (["index", "build", "--input", user / "corpus.txt", "--out", user, "--force", *ck, "--no-progress"],
                user, f"refusing to write {user}: it contains the input file ({user / 'corpus.txt'})")
    if name == "index build --out USER_DIR":
        return (["index", "build", "--input", w["corpus"], "--out", user, "--force", *ck, "--no-progress"],
                user, f"{user} is a folder bert_tf did not write (it has no manifest.json), so it is never "
                      "replaced, even with --force")
    if name == "index build --out .":  # was a raw OSError: [Errno 16] Device or resource busy
        monkeypatch.chdir(user)
        return (["index", "build", "--input", w["corpus"], "--out", ".", "--force", *ck], user,
                "refusing to write an index to .: it is the current folder")
    if name == "index build --out ..":
        monkeypatch.chdir(user / "sub")
        return (["index", "build", "--input", w["corpus"], "--out", "..", "--force", *ck], user,
                "refusing to write an index to ..: it is a parent of the current folder")
    if name == "senses --projector USER_DIR":  # the case: it wiped DIR
        return (["senses", w["index"], "bank", "--n-senses", "2", "--projector", user, "--force"], user,
                "is a folder bert_tf did not write (it has no bert_tf_projector.json)")
    if name == "search --projector USER_DIR":
        return (["search", w["index"], "river bank", "--projector", user, "--force"], user,
                "is a folder bert_tf did not write (it has no bert_tf_projector.json)")
    if name == "export --out DIR (DIR/1 the user's)":
        user = user_folder(tmp / "exports" / "1")
        return (["export", *ck, "--out", tmp / "exports", "--version", "1", "--force"], user,
                "is a folder bert_tf did not write (it has no assets/bert_tf_export.json)")
    if name == "convert HF USER_DIR":
        return (["convert", w["hf"], user, "--force"], user, "is a folder bert_tf did not write (it has no "
                                                               "MANIFEST.json)")
    if name == "download --dest DIR (DIR/NAME the user's)":
        user = user_folder(tmp / "dest" / ZIP_NAME)
        return (["download", ZIP_NAME, "--from-zip", w["zip"], "--dest", tmp / "dest", "--force", "--no-progress"],
                user, "is a folder bert_tf did not write (it has no MANIFEST.json)")
    if name == "beam-embed --output USER_DIR/corpus (a manifest not ours)":
        (user / "corpus-manifest.json").write_text('{"the user": "s"}')
        return (["beam-embed", "--input", w["corpus"], "--output", user / "corpus", *ck, "--force"], user,
                "corpus-manifest.json is not the manifest of a bert-tf run, so the files at this prefix are never "
                "replaced, even with --force")
    if name == "embed --output USER_DIR":
        return (["embed", "a b", "--output", user, "--force", *ck], user, f"--output {user} is a folder")
    if name in ("plot --out USER_DIR.png", "similarity --plot USER_DIR.png", "senses --plot USER_DIR.png"):
        user = user_folder(tmp / "figure.png")
        argv = {"plot": ["plot", "bank", "river bank", "--out", user, *ck],
                "similarity": ["similarity", "--words", "bank", "river bank", "--plot", user, *ck],
                "senses": ["senses", w["index"], "bank", "--plot", user]}[name.split()[0]]
        return [*argv, "--force"], user, f"{name.split()[1]} {user} is a folder"
    raise AssertionError(name)


@pytest.mark.parametrize("name", [
    "index build --input DIR/corpus.txt --out DIR", "index build --out USER_DIR", "index build --out .",
    "index build --out ..", "senses --projector USER_DIR", "search --projector USER_DIR",
    "export --out DIR (DIR/1 the user's)", "convert HF USER_DIR", "download --dest DIR (DIR/NAME the user's)",
    "beam-embed --output USER_DIR/corpus (a manifest not ours)", "embed --output USER_DIR",
    "plot --out USER_DIR.png", "similarity --plot USER_DIR.png", "senses --plot USER_DIR.png",
])
def test_a_folder_holding_a_users_files_survives_every_command_with_force(world, tmp_path, capsys, monkeypatch,
                                                                          name):
    argv, user, message = _case(name, world, tmp_path, monkeypatch)
    before = snapshot(user)
    code, _, err = cli(capsys, *argv)
    assert code == 1 and message in one_error_line(err), err
    assert snapshot(user) == before
    assert not [p for p in user.parent.iterdir() if p.name.startswith(".")]  # no staging folder, no lock


def test_forced_outputs_that_bert_tf_wrote_are_still_replaced(world, tmp_path, capsys):
    ck = ["--checkpoint", world["checkpoint"]]
    index, projector, converted = tmp_path / "ix", tmp_path / "proj", tmp_path / "converted"
    dest = tmp_path / "dest"
    commands = {
        index: ["index", "build", "--input", world["corpus"], "--out", index, *ck, "--no-progress"],
        projector: ["senses", world["index"], "bank", "--n-senses", "2", "--projector", projector],
        converted: ["convert", world["hf"], converted],
        dest / ZIP_NAME: ["download", ZIP_NAME, "--from-zip", world["zip"], "--dest", dest, "--no-progress"],
    }
    for out, argv in commands.items():
        assert cli(capsys, *argv)[0] == 0, argv
        first = snapshot(out)
        if argv[0] != "download":  # a complete checkpoint is left as it is without --force
            code, _, err = cli(capsys, *argv)
            assert code == 1 and f"{out} already exists" in one_error_line(err) and "pass --force" in err
        assert snapshot(out).keys() == first.keys()
        (out / "stale.bin").write_bytes(b"ours, from the first run")  # ... but then it is not ours alone
        code, _, err = cli(capsys, *argv, "--force")
        assert code == 1 and "also holds 'stale.bin', which bert_tf did not write" in one_error_line(err)
        (out / "stale.bin").unlink()
        code, _, err = cli(capsys, *argv, "--force")
        assert code == 0, err
        assert snapshot(out).keys() == first.keys()
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_beam_embed_with_force_replaces_its_run_and_nothing_else_and_the_index_keeps_its_parquet(world, tmp_path,
                                                                                               capsys):
    user = user_folder(tmp_path / "mine")
    mine = snapshot(user)
    argv = ["beam-embed", "--input", world["corpus"], "--output", user / "corpus", "--checkpoint",
            world["checkpoint"], "--num-shards", "1", "--force"]
    for _ in range(2):  # a new run, then a forced replacement of it
        code, _, err = cli(capsys, *argv)
        assert code == 0, err
        assert {k: v for k, v in snapshot(user).items() if not k.startswith("corpus-")} == mine
    run = sorted(p.name for p in user.iterdir() if p.name.startswith("corpus-"))
    assert run == ["corpus-00000-of-00001.parquet", "corpus-dead-letters.jsonl",
                   "corpus-manifest.json"]
    before = snapshot(user)
    code, _, err = cli(capsys, "index", "build", "--parquet", user / "corpus", "--out", user, "--force")
    assert code == 1 and f"refusing to write {user}: it contains the Parquet input" in one_error_line(err)
    assert snapshot(user) == before
