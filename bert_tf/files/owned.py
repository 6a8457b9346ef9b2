"""What bert_tf wrote and may therefore replace: its own outputs recognised, and one decision for every writer.

Replacing a folder deletes everything in it, and only what bert_tf wrote can be
written again. So `--force` (`force=True` in Python) replaces a folder only when
bert_tf can tell it is one of its own, by the file each writer leaves in it:

* an occurrence index: `manifest.json` in the index format (`bert_tf.index.layout`);
* an Embedding Projector folder: `bert_tf_projector.json` (`bert_tf.index.projector`);
* a checkpoint bert_tf unpacked or converted: `MANIFEST.json` listing its files
  (`bert_tf.store.unpack`, `bert_tf.model.convert`);
* a SavedModel version folder: `assets/bert_tf_export.json` (`bert_tf.serve.export`).

Anything else is refused whatever the flags, and so is one of ours that holds
something its record does not account for (a note the user saved in it), a
folder that is or holds an input being read, and the current folder, one of its
parents or `/`. An empty folder holds nothing to lose and is used as it is.

A Beam run's files are recognised by their names and the run's manifest
(`is_run_manifest`). A single output file the user named (`embed --output`, `--plot`) is
replaced only when it is one bert_tf wrote: a PNG whose `Software` text says
bert_tf (`bert_tf.files.figures.save_png`), the JSON Lines or `.npz` of `bert-tf embed`
(their fields), or an empty file: `bert_tf.files.targets.is_own_file` decides, and
`bert_tf.files.output.check_output` asks it.

Standard library only: every layer may ask.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Callable, Iterable

from bert_tf.errors import InvalidValue
from bert_tf.files.layout import MANIFEST as CHECKPOINT_MANIFEST
from bert_tf.files.targets import check_target, force_hint

#: The index's manifest and its format name (`bert_tf.index.layout` writes them).
INDEX_MANIFEST = "manifest.json"
INDEX_FORMAT = "bert_tf occurrence index"
#: The marker `bert_tf.index.projector` writes into every projector folder, and its format name.
PROJECTOR_MARKER = "bert_tf_projector.json"
PROJECTOR_FORMAT = "bert_tf embedding projector"
#: The metadata asset of every SavedModel `bert_tf.serve.export` writes (relative to the version folder).
EXPORT_METADATA = "assets/bert_tf_export.json"
#: What TensorFlow writes into a SavedModel folder.
_SAVED_MODEL_ENTRIES = frozenset({"saved_model.pb", "saved_model.pbtxt", "fingerprint.pb", "variables", "assets",
                                  "assets.extra"})

INDEX, PROJECTOR, CHECKPOINT, EXPORT = "index", "projector", "checkpoint", "export"

# ---------------------------------------------------------------------- recognising our own


def _read_json(path: Path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.loads(f.read(1 << 24))
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _index_entries(folder: Path) -> set[str] | None:
    manifest = _read_json(folder / INDEX_MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != INDEX_FORMAT \
            or not isinstance(manifest.get("files"), dict):
        return None
    return {INDEX_MANIFEST, *manifest["files"]}


def _projector_entries(folder: Path) -> set[str] | None:
    marker = _read_json(folder / PROJECTOR_MARKER)
    if not isinstance(marker, dict) or marker.get("format") != PROJECTOR_FORMAT \
            or not isinstance(marker.get("files"), list):
        return None
    return {PROJECTOR_MARKER, *map(str, marker["files"])}


def _checkpoint_entries(folder: Path) -> set[str] | None:
    manifest = _read_json(folder / CHECKPOINT_MANIFEST)
    if not isinstance(manifest, dict) or "bert_tf_version" not in manifest \
            or not isinstance(manifest.get("files"), dict):
        return None
    return {CHECKPOINT_MANIFEST, *(str(rel).split("/")[0] for rel in manifest["files"])}


def _export_entries(folder: Path) -> set[str] | None:
    metadata = _read_json(folder / EXPORT_METADATA)
    if not isinstance(metadata, dict) or not (folder / "saved_model.pb").is_file():
        return None
    return set(_SAVED_MODEL_ENTRIES)


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of folder bert_tf writes: how people call it, and how its own entries are found."""

    name: str
    what: str  # "an index", for messages
    marker: str  # the file that makes it ours
    entries: Callable[[Path], "set[str] | None"]  # its own top-level names; None: not this kind


KINDS = {
    INDEX: Kind(INDEX, "an index", INDEX_MANIFEST, _index_entries),
    PROJECTOR: Kind(PROJECTOR, "an Embedding Projector folder", PROJECTOR_MARKER, _projector_entries),
    CHECKPOINT: Kind(CHECKPOINT, "a checkpoint folder", CHECKPOINT_MANIFEST, _checkpoint_entries),
    EXPORT: Kind(EXPORT, "a SavedModel version folder", EXPORT_METADATA, _export_entries),
}


def kind_of(path: str | os.PathLike) -> str | None:
    """Which of bert_tf's folders `path` is (`INDEX`, `PROJECTOR`, `CHECKPOINT`, `EXPORT`), or None.

    Example:
        >>> kind_of("corpus.index")
        'index'
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    for kind in KINDS.values():
        if kind.entries(folder) is not None:
            return kind.name
    return None


def foreign_entries(path: str | os.PathLike, kind: str) -> list[str]:
    """The names in the folder `path` that its `kind`'s record does not account for (sorted).

    Raises:
        ValueError: `path` is not a folder of that kind.
    """
    folder = Path(path)
    own = KINDS[kind].entries(folder)
    if own is None:
        raise InvalidValue(f"{folder} is not {KINDS[kind].what} written by bert_tf")
    return sorted(name for name in os.listdir(folder) if name not in own)


def is_run_manifest(manifest) -> bool:
    """Whether a parsed `PREFIX-manifest.json` is one `bert_tf.beam.pipeline` wrote (its fields, its file list)."""
    # "space" since corpus format 2 (`bert_tf.embed.corpus_format`), "identity" in format 1.
    return (isinstance(manifest, dict)
            and (isinstance(manifest.get("space"), dict) or isinstance(manifest.get("identity"), dict))
            and isinstance(manifest.get("files"), list) and "format_version" in manifest)


# ---------------------------------------------------------------------- paths that hold others


def holds(outer: str | os.PathLike, inner: str | os.PathLike) -> bool:
    """Whether the existing folder or file `outer` is `inner` or one of its parents.

    Compared by device and inode, so a symbolic link, a `..` or a bind mount that leads to
    the same folder counts; what does not exist holds nothing.
    """
    try:
        outer_stat = os.stat(outer)
    except OSError:
        return False
    inner = Path(inner).resolve()
    for folder in (inner, *inner.parents):
        try:
            if os.path.samestat(os.stat(folder), outer_stat):
                return True
        except OSError:
            continue
    return False


# ---------------------------------------------------------------------- the decision


def check_replaceable(target: str | os.PathLike, kind: str, *, force: bool,
                      inputs: Iterable[tuple[str, str | os.PathLike]] = ()) -> None:
    """Refuses, before any work, to write the folder `target` where that would lose something.

    Allowed: a new folder, an empty one, and with `force` one of bert_tf's own of this
    `kind` that holds nothing else. Everything else is refused, whatever `force` says.

    Args:
        target: the folder about to be written (and, if it exists, replaced as a whole).
        kind: what is written there (`INDEX`, `PROJECTOR`, `CHECKPOINT`, `EXPORT`).
        force: whether one of our own folders of this kind may be replaced.
        inputs: `(description, path)` of what the command reads ("the input file", "corpus.txt"):
            `target` may be none of them nor hold one.

    Raises:
        ValueError: `target` is the current folder, one of its parents or `/`, or it is or holds an input.
        FileExistsError: `target` is a file, a folder bert_tf did not write (or another kind of
            ours), ours with other files in it, or ours and `force` is false.
        PermissionError: its parent cannot be written.
    """
    target = Path(target)
    what = KINDS[kind].what
    cwd = Path.cwd()
    if holds(target, cwd):
        where = ("the root folder" if os.path.samestat(os.stat(target), os.stat("/")) else
                 "the current folder" if os.path.samestat(os.stat(target), os.stat(cwd)) else
                 "a parent of the current folder")
        raise InvalidValue(f"refusing to write {what} to {target}: it is {where}, and replacing it would delete "
                           f"everything in it; give a new folder, e.g. {Path(target, 'out')}")
    for description, path in inputs:
        if holds(target, path):
            how = "is" if holds(path, target) else "contains"
            raise InvalidValue(f"refusing to write {target}: it {how} {description} ({path}), which replacing it "
                               "would delete; choose another output folder")
    if not target.exists() and not target.is_symlink():
        check_target(target)
        return
    if not target.is_dir():
        raise FileExistsError(f"{target} is a file, not a folder; {what} is a folder: choose another path")
    if not any(os.scandir(target)):  # made empty by the user for the purpose: nothing to lose
        check_target(target, replace=True)
        return
    found = kind_of(target)
    if found is None:
        raise FileExistsError(f"{target} is a folder bert_tf did not write (it has no {KINDS[kind].marker}), so "
                              f"it is never replaced, even with {force_hint()}: choose a new folder (or empty this one "
                              "yourself)")
    if found != kind:
        raise FileExistsError(f"{target} is {KINDS[found].what} written by bert_tf, not {what}; choose another "
                              "folder")
    foreign = foreign_entries(target, kind)
    if foreign:
        more = f" and {len(foreign) - 1} more" if len(foreign) > 1 else ""
        raise FileExistsError(f"{target} is {what} written by bert_tf, but it also holds {foreign[0]!r}{more}, "
                              "which bert_tf did not write; move that out first, or choose another folder")
    if not force:
        raise FileExistsError(f"{target} already exists ({what} written by bert_tf); pass {force_hint()} to "
                              "replace it")
    check_target(target, replace=True)

