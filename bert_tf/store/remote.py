"""Checkpoints on any filesystem TensorFlow reads (`gs://`, `s3://` with tensorflow-io, `ram://`).

The loader reads local folders only (it checks files, hashes them, memory-maps the
TF1 shards), so a remote checkpoint is copied once into a local cache and loaded
from there. This is how a Dataflow or Flink worker gets its model: the pipeline
names `--checkpoint gs://bucket/uncased_L-12_H-768_A-12`, and the first thread of
each worker process that needs the model copies it to the worker's disk; the other
threads, and processes started later on the same machine, find the copy.

The copy is staged (`bert_tf.files.atomic.staged_directory`: a hidden folder
renamed into place when every file is in, under a lock), so a worker killed
halfway leaves nothing that looks like a checkpoint, and two processes on one
machine never copy at the same time. A cached copy is used only while every
remote file still has the size it has locally; otherwise it is copied again.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from pathlib import Path

logger = logging.getLogger("bert_tf")

#: Overrides where remote checkpoints are cached (default: `user_cache()/remote`).
CACHE_ENV = "BERT_TF_REMOTE_CACHE"


def is_remote(path: str | os.PathLike | None) -> bool:
    """Whether `path` is a URL of a filesystem other than the local one (`gs://...`, `ram://...`)."""
    return path is not None and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", str(path)) is not None \
        and not str(path).startswith("file://")


def cache_root() -> Path:
    """The folder that holds local copies of remote checkpoints."""
    from bert_tf.files.paths import user_cache

    return Path(os.environ.get(CACHE_ENV) or user_cache() / "remote")


def cache_path(url: str, root: str | os.PathLike | None = None) -> Path:
    """Where the local copy of `url` lives: its last component and a hash of the whole URL."""
    url = url.rstrip("/")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", url.rsplit("/", 1)[-1]) or "checkpoint"
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:12]
    return Path(root or cache_root()) / f"{name}-{digest}"


def _remote_files(url: str) -> dict[str, int]:
    """Every file under `url`, relative path -> size in bytes."""
    from bert_tf.runtime import tf

    files = {}
    for directory, _, names in tf.io.gfile.walk(url):
        for name in names:
            full = f"{directory.rstrip('/')}/{name}"
            rel = full[len(url):].lstrip("/")
            if not any(part.startswith(".") for part in rel.split("/")):  # another tool's temporaries
                files[rel] = tf.io.gfile.stat(full).length
    return files


def _matches(local: Path, files: dict[str, int]) -> bool:
    from bert_tf.files.layout import is_complete

    if not is_complete(local):
        return False
    return all((local / rel).is_file() and (local / rel).stat().st_size == size for rel, size in files.items())


def local_checkpoint(path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> str:
    """A local folder holding the checkpoint `path` names: `path` itself when it is local, else a cached copy.

    Args:
        path: a local checkpoint folder (returned unchanged; `file://` is stripped) or a URL that
            `tf.io.gfile` reads, e.g. `gs://bucket/checkpoints/uncased_L-12_H-768_A-12`.
        cache_dir: where copies go (default `BERT_TF_REMOTE_CACHE`, else `~/.cache/bert_tf/remote`).

    Returns:
        The local folder, ready for `BertEmbedder.from_checkpoint`.

    Raises:
        CheckpointNotFoundError: nothing at the URL, or it cannot be listed (the message says why).

    Example:
        >>> local_checkpoint("gs://my-bucket/checkpoints/uncased_L-12_H-768_A-12")
        '/home/me/.cache/bert_tf/remote/uncased_L-12_H-768_A-12-3f2a9c0d1e4b'
    """
    text = os.fspath(path)
    if not is_remote(text):
        return text[len("file://"):] if text.startswith("file://") else text
    from bert_tf.files.atomic import staged_directory, target_lock
    from bert_tf.runtime import tf
    from bert_tf.store.resolve import CheckpointNotFoundError

    url = text.rstrip("/")
    try:
        files = _remote_files(url)
    except tf.errors.OpError as e:
        raise CheckpointNotFoundError(f"cannot list checkpoint {url}: {e.message}; check the URL and the "
                                      "credentials of this machine") from None
    if not files:
        raise CheckpointNotFoundError(f"checkpoint {url} does not exist or is empty; give the folder that holds "
                                      "bert_config.json, vocab.txt and bert_model.ckpt.*")
    target = cache_path(url, cache_dir)
    if _matches(target, files):
        return str(target)
    with target_lock(target):
        if _matches(target, files):  # another process copied it while we waited
            return str(target)
        logger.info("copying checkpoint %s (%d files, %.1f MB) to %s", url, len(files),
                    sum(files.values()) / 1e6, target)
        with staged_directory(target, replace=True) as stage:
            for rel in sorted(files):
                destination = stage / rel
                destination.parent.mkdir(parents=True, exist_ok=True)
                tf.io.gfile.copy(f"{url}/{rel}", str(destination), overwrite=True)
    return str(target)
