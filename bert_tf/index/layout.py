"""What an index folder holds, the manifest that says it is complete, and the checks made on opening it.

    INDEX_DIR/
      meta.sqlite               texts (id, key, text), occurrences (id, text_id, word, start, end), and
                                the texts' fields (text_id, name, value) with their types (`fields`)
      words.npy [, .scales.npy] every occurrence's unit vector (float16, or int8 and a scale per row)
      sentences.npy [...]       every text's unit sentence vector
      word_stats*, sentence_stats*   the corpus statistics queries are normalised with
      words.faiss, sentences.faiss   approximate indexes (only above `search.EXACT_LIMIT` rows)
      manifest.json             written last: the `VectorSpace` of the vectors, scoring, counts, and the
                                size and SHA-256 of every other file

An index is built in a hidden staging folder and renamed into place when complete, so an
interrupted build leaves nothing under the final name; a folder without a valid manifest,
or whose files do not match it, is refused with `CorruptIndexError`, never searched.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from bert_tf.errors import InvalidValue
from bert_tf.files.digest import sha256_file as sha256
from bert_tf.files.owned import INDEX_FORMAT as FORMAT, INDEX_MANIFEST as MANIFEST  # how --force knows an index

#: 2: the manifest records the `VectorSpace` ("space") where version 1 had "identity" and "options" (still read).
#: 3: meta.sqlite holds the texts' fields (versions 1 and 2 are still read, as indexes without fields).
VERSION = 3
#: The versions this bert_tf reads.
READABLE_VERSIONS = (1, 2, VERSION)
META = "meta.sqlite"
WORDS = "words"
SENTENCES = "sentences"


def approximate_file(name: str) -> str:
    """The faiss index of the `name` vectors (`WORDS` or `SENTENCES`)."""
    return f"{name}.faiss"


class CorruptIndexError(InvalidValue):
    """The folder is not a complete, intact index (interrupted build, damaged or missing file)."""


class IndexMismatchError(InvalidValue):
    """A query was embedded with another model or other options than the index (another `VectorSpace`)."""


def file_records(directory: Path) -> dict:
    """`{name: {"bytes", "sha256"}}` of every file in `directory` but the manifest."""
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
            for p in sorted(directory.iterdir()) if p.is_file() and p.name != MANIFEST}


def write_manifest(directory: Path, manifest: dict) -> None:
    """Writes the manifest last, fsynced, with the records of every file already there."""
    manifest = {"format": FORMAT, "version": VERSION, **manifest, "files": file_records(directory)}
    path = directory / MANIFEST
    with open(path, "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())


def read_manifest(directory: str | os.PathLike, *, verify: bool = True) -> dict:
    """The manifest of a complete index, its files checked against it.

    Args:
        directory: the index folder.
        verify: also compare every file's SHA-256 (sizes are always compared).

    Raises:
        FileNotFoundError: `directory` does not exist.
        CorruptIndexError: no manifest (a build that did not finish, or not an index), an
            unreadable one, or a file missing, of the wrong size or with the wrong checksum.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no index at {directory}: build one with `bert-tf index build --input FILE "
                                f"--out {directory}`")
    path = directory / MANIFEST
    rebuild = f"rebuild it with `bert-tf index build ... --out {directory} --force`"
    # Without a manifest of ours the folder is not recognised as an index, so --force would not replace it.
    elsewhere = "build the index into a new folder with `bert-tf index build ... --out NEW_DIR`"
    if not path.is_file():
        raise CorruptIndexError(f"{directory} is not a complete index (no {MANIFEST}: its build did not finish, "
                                f"or it is not an index); {elsewhere}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CorruptIndexError(f"{path} cannot be read ({e}); {elsewhere}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CorruptIndexError(f"{path} is not the manifest of a bert_tf index; {elsewhere}")
    if manifest.get("version") not in READABLE_VERSIONS:  # 1: read through `space.space_of_identity`
        raise CorruptIndexError(f"{directory} is an index of format version {manifest.get('version')}; this "
                                f"bert_tf reads versions {', '.join(map(str, READABLE_VERSIONS))}: {rebuild}")
    for name, record in manifest.get("files", {}).items():
        file = directory / name
        if not file.is_file():
            raise CorruptIndexError(f"{directory} is damaged: {name} is missing; {rebuild}")
        size = file.stat().st_size
        if size != record["bytes"]:
            raise CorruptIndexError(f"{directory} is damaged: {name} has {size} bytes, the manifest says "
                                    f"{record['bytes']}; {rebuild}")
        if verify and sha256(file) != record["sha256"]:
            raise CorruptIndexError(f"{directory} is damaged: {name} does not match its checksum; {rebuild}")
    return manifest
