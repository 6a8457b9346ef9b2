"""A checkpoint zip, verified and unpacked: nothing is unpacked until all of it has been checked.

Before anything is written we check the SHA-256 (when known), that no member can
escape the target (zip slip: absolute paths, `..`, links), that the checkpoint
files are all there, the CRC of every member, and that `bert_config.json`
parses. Only the checkpoint's own files are unpacked (a mirror's zip may carry a
README, `__MACOSX/` debris, a member that expands to gigabytes), and their
declared sizes are checked against the free space first. Members go into a
temporary folder beside the target, renamed into place in one step
(`bert_tf.files.atomic`), with a `MANIFEST.json` listing every file and its size,
which `bert_tf.files.layout.is_complete` checks later.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import re
import shutil
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

from bert_tf.files.atomic import staged_directory
from bert_tf.files.digest import sha256_file
from bert_tf.files.owned import CHECKPOINT
from bert_tf.files.layout import missing_shards, required_files, write_manifest
from bert_tf.model.config import BertConfig
from bert_tf.store.messages import DownloadError, human, say

#: The files of a checkpoint folder, the only members of a zip that are unpacked.
#: Google's zips hold these (the 2018-19 ones also `bert_model.ckpt.meta`, the graph) plus folder entries.
_CHECKPOINT_FILE = re.compile(r"^(bert_config\.json|vocab\.txt|bert_model\.ckpt\.(index|meta|data-\d+-of-\d+))$")
#: Generous bounds on the files read whole into memory; BERT's are a few KB and about 1 MB.
_MAX_MEMBER_SIZE = {"bert_config.json": 1 << 20, "vocab.txt": 64 << 20}
_CHUNK = 1 << 20


class BadZip(DownloadError):
    """The zip itself is unusable: corrupt, unsafe, or not a BERT checkpoint."""


def install(zip_path: Path, target: Path, *, sha256: str | None, manifest: dict[str, Any], progress: bool) -> None:
    """Verifies the zip and unpacks the checkpoint in it into `target`, with a MANIFEST of `manifest`'s fields.

    Raises:
        BadZip: the zip is corrupt, unsafe or not a checkpoint; nothing was written.
        DownloadError: too little disk space, or `target` cannot be written (it was not).
    """
    say(progress, f"verifying {zip_path}")
    plan = verify_zip(zip_path, sha256=sha256)
    if plan.skipped:
        shown = ", ".join(plan.skipped[:5]) + (f" and {len(plan.skipped) - 5} more" if len(plan.skipped) > 5 else "")
        say(progress, f"not unpacking {len(plan.skipped)} member(s) that are not part of a BERT checkpoint: {shown}")
    # The sizes the zip declares: zipfile stops every member at its declared size, so they bound the disk used.
    check_disk_space(target.parent, plan.unpacked_size, "unpacking the checkpoint")
    try:
        say(progress, f"unpacking into {target}")
        unpack(zip_path, plan, target, {**manifest, "zip_sha256": plan.sha256, "zip_size": plan.size})
    except OSError as e:
        raise DownloadError(f"cannot unpack into {target.parent}: {e.strerror or e}; "
                            f"{target} was not written") from None


# --------------------------------------------------------------------------- verification

@dataclasses.dataclass(frozen=True)
class ZipPlan:
    """A verified zip: what to unpack where."""

    members: tuple[tuple[zipfile.ZipInfo, str], ...]  # (member, path inside the checkpoint)
    sha256: str
    size: int
    unpacked_size: int
    skipped: tuple[str, ...] = ()  # members that are not part of a checkpoint, not unpacked


def verify_zip(path: Path, *, sha256: str | None) -> ZipPlan:
    """Checks everything about the zip that can be checked before unpacking it.

    Raises:
        BadZip: naming the member or check that failed.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise BadZip(f"{path} is not a readable zip file ({e})") from None
    with archive:
        infos = archive.infolist()
        for info in infos:
            reason = _unsafe_reason(info)
            if reason:
                raise BadZip(f"refusing to unpack {path}: member {info.filename!r} {reason}; nothing was unpacked")
        root = _checkpoint_root(path, infos)
        members, skipped = _checkpoint_members(path, infos, root)
        names = [rel for _, rel in members]
        missing = [n for n in required_files() if n not in names] + missing_shards(names)
        if missing:
            raise BadZip(f"{path} is not a complete BERT checkpoint: {', '.join(missing)} missing"
                          f"{' under ' + root if root else ''} (expected {', '.join(required_files())}, "
                          "bert_model.ckpt.data-*)")
        digest = sha256_file(path)
        if sha256 is not None and digest != sha256:
            raise BadZip(f"SHA-256 of {path} is {digest}, expected {sha256}: "
                          "the file is corrupt or not the published one")
        for info, _ in members:
            _check_member(archive, info, path)
        config_member = root + "bert_config.json"
        try:
            BertConfig.from_dict(json.loads(archive.read(config_member)), source=f"{path}:{config_member}")
        except (ValueError, UnicodeDecodeError) as e:
            raise BadZip(f"{config_member} in {path} is not a valid BERT config: {e}") from None
    return ZipPlan(members, digest, path.stat().st_size, sum(info.file_size for info, _ in members),
                    tuple(skipped))


def _checkpoint_members(path: Path, infos: list[zipfile.ZipInfo],
                        root: str) -> tuple[tuple[tuple[zipfile.ZipInfo, str], ...], list[str]]:
    """(the members to unpack with their paths in the checkpoint, the names of the others).

    Only a checkpoint's own files are unpacked: a mirror's zip may carry anything
    else (a README, macOS `__MACOSX/` debris, a member that expands to gigabytes),
    and none of it belongs in `checkpoints/NAME/`. Folder entries are dropped too.

    Raises:
        BadZip: a checkpoint file appears twice, or declares a size it cannot have.
    """
    members, skipped, seen = [], [], set()
    for info in infos:
        if info.is_dir():
            continue
        rel = info.filename[len(root):] if info.filename.startswith(root) else ""
        if not _CHECKPOINT_FILE.match(rel):
            skipped.append(info.filename)
            continue
        if rel in seen:
            raise BadZip(f"refusing to unpack {path}: member {info.filename!r} appears twice; nothing was unpacked")
        seen.add(rel)
        limit = _MAX_MEMBER_SIZE.get(rel)
        if limit is not None and info.file_size > limit:
            raise BadZip(f"refusing to unpack {path}: member {info.filename!r} declares {human(info.file_size)}, "
                          f"more than a {rel} can be ({human(limit)}); nothing was unpacked")
        members.append((info, rel))
    return tuple(members), skipped


def _unsafe_reason(info: zipfile.ZipInfo) -> str | None:
    """Why unpacking this member could write outside the target, or None."""
    name = info.filename.replace("\\", "/")
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "has an absolute path"
    if ".." in name.split("/"):
        return "climbs out of the folder with '..'"
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        return "is a symbolic link"
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        return "is a special file"
    return None


def _checkpoint_root(path: Path, infos: list[zipfile.ZipInfo]) -> str:
    """The folder prefix holding the checkpoint: '' (2020 small BERTs) or 'NAME/' (the 2018-19 zips)."""
    roots = set()
    for info in infos:
        directory, base = posixpath.split(info.filename)
        if "/" not in directory and (base in required_files() or base.startswith("bert_model.ckpt.")):
            roots.add(directory + "/" if directory else "")
    if not roots:
        raise BadZip(f"{path} holds no BERT checkpoint files (bert_config.json, vocab.txt, bert_model.ckpt.*) "
                      "at its top or in one top folder")
    if len(roots) > 1:
        listed = ", ".join(sorted(r or "(top)" for r in roots))
        raise BadZip(f"{path} holds checkpoint files in several folders ({listed}): unpack it by hand")
    return roots.pop()


def _check_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> None:
    """Reads one member to the end, which makes zipfile check its CRC-32."""
    try:
        with archive.open(info) as member:
            while member.read(_CHUNK):
                pass
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise BadZip(f"{path} is corrupt: member {info.filename!r} fails its check ({e})") from None
    except NotImplementedError as e:
        raise BadZip(f"{path}: member {info.filename!r} uses an unsupported compression ({e})") from None
    except RuntimeError as e:  # zipfile's "File ... is encrypted, password required"
        raise BadZip(f"{path}: member {info.filename!r} cannot be read ({e})") from None


# --------------------------------------------------------------------------- unpacking


def unpack(zip_path: Path, plan: ZipPlan, target: Path, manifest: dict[str, Any]) -> None:
    """Unpacks into a temporary folder beside `target`, then renames it into place."""
    # Only a checkpoint of ours is replaced (an incomplete one, or with --force); any other folder is refused.
    with staged_directory(target, replace=True, owner=CHECKPOINT) as staging:
        inside = staging.resolve()
        with zipfile.ZipFile(zip_path) as archive:
            for info, rel in plan.members:
                out = staging.joinpath(*rel.split("/"))
                if not out.resolve().is_relative_to(inside):  # _unsafe_reason already refused these
                    raise BadZip(f"refusing to unpack {zip_path}: member {info.filename!r} leaves the folder")
                out.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(info) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, _CHUNK)
        write_manifest(staging, manifest)


# --------------------------------------------------------------------------- disk space


def _free_space(directory: Path) -> int:
    return shutil.disk_usage(directory).free


def check_disk_space(directory: Path, needed: int, what: str) -> None:
    """Raises `DownloadError` when `directory`'s file system has less than `needed` bytes free for `what`."""
    free = _free_space(directory)
    if needed > free:
        raise DownloadError(f"not enough disk space in {directory}: {what} needs about {human(needed)}, "
                            f"{human(free)} free; free some space or choose another --dest")
