"""What every PNG figure of the package needs: matplotlib without a display, and a checked path."""

from __future__ import annotations

import os

from bert_tf.errors import InvalidValue


def pyplot():
    """`matplotlib.pyplot` on the Agg backend: figures go to files and never need a display."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def check_png_path(path: str | os.PathLike, *, option: str | None = None) -> str:
    """Refuses a plot path that does not end in `.png` or whose folder does not exist; returns it as `str`.

    Args:
        path: where the figure is to go.
        option: the command-line flag that gave it, for the message.
    """
    path = os.fspath(path)
    if not path.lower().endswith(".png"):
        given = f"{option} " if option else ""
        raise InvalidValue(f"plots are saved as PNG; give {given}a path ending in .png, got {path!r}")
    parent = os.path.dirname(path) or "."
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"cannot save {path}: the folder {parent} does not exist")
    return path


def save_png(fig, path: str, **savefig_options) -> None:
    """Saves `fig` as a PNG at `path` atomically, marked as bert_tf's (so `--force` may replace it later).

    Raises:
        bert_tf.files.output.OutputError: it cannot be written (names `path` and the reason).
    """
    from bert_tf.files.output import AtomicFile, output_errors
    from bert_tf.files.targets import PNG_SOFTWARE

    with output_errors(path), AtomicFile(path, "wb") as f:
        fig.savefig(f, format="png", metadata={"Software": PNG_SOFTWARE}, **savefig_options)
