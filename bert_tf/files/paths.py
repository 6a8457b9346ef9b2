"""Where bert_tf keeps its own files."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache() -> Path:
    """bert_tf's folder in the user's cache: `$XDG_CACHE_HOME/bert_tf`, by default `~/.cache/bert_tf`."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bert_tf"
