"""A checkpoint's vocabulary (vocab.txt) and what it says about casing.

Google's checkpoints do not record whether text must be lower-cased: the
reference tokenizer is told, and its `validate_case_matches_checkpoint` checks
the flag against the checkpoint's name. Here the casing is
decided in one place, in this order: the registry of released checkpoints,
the checkpoint's name, and then the vocabulary itself.

Nothing here needs TensorFlow, so a checkpoint's vocabulary can be read and
its casing decided without building a tokenizer.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Sequence

import numpy as np

from bert_tf.errors import InvalidType, InvalidValue

logger = logging.getLogger("bert_tf")


def load_vocab(path: str | os.PathLike) -> list[str]:
    """Reads a WordPiece vocabulary: UTF-8, one token per line, id = line number.

    Only the line terminator is removed (as Hugging Face does; Google's reader
    also strips spaces, which no real vocabulary has). A UTF-8 byte-order mark,
    which some editors write, is dropped with a warning: kept, it would become
    part of the first token, and that token (often "[PAD]" or "the") could never
    match.

    Example:
        >>> vocab = load_vocab("uncased_L-12_H-768_A-12/vocab.txt")  # doctest: +SKIP
        >>> vocab[101]
        '[CLS]'

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: the file holds no tokens, or is not UTF-8 (the message names the
            file and the first line that is not).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"vocabulary file not found: {path!r}")
    try:
        with open(path, encoding="utf-8") as f:
            vocab = [line.rstrip("\n") for line in f]
    except UnicodeDecodeError:
        raise InvalidValue(_not_utf8_message(path)) from None
    if vocab and vocab[0].startswith("\ufeff"):
        logger.warning("%s starts with a byte-order mark; ignoring it", path)
        vocab[0] = vocab[0][1:]
    if not vocab or all(not token for token in vocab):
        raise InvalidValue(f"vocabulary file is empty: {path!r}")
    return vocab


def _not_utf8_message(path: str) -> str:
    """Names the first line of `path` that is not UTF-8, and what to do."""
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return (f"{path}: not UTF-8 (it starts with a UTF-16 byte-order mark); "
                f"a vocab.txt must be UTF-8, one token per line: save it again as UTF-8")
    for number, line in enumerate(data.split(b"\n"), start=1):
        try:
            line.decode("utf-8")
        except UnicodeDecodeError as e:
            return (f"{path}: line {number} is not UTF-8 (byte 0x{line[e.start]:02x} at byte {e.start + 1} "
                    f"of the line); a vocab.txt must be UTF-8, one token per line: save it again as UTF-8")
    return f"{path}: not UTF-8; a vocab.txt must be UTF-8, one token per line: save it again as UTF-8"


def _lower_case_from_name(name: str | None) -> bool | None:
    """What a checkpoint's name says about casing, or None when it says nothing.

    Follows Google's `validate_case_matches_checkpoint`: "uncased_*",
    "multilingual_L-*" (the first, uncased multilingual model) and
    "chinese_L-*" are lower-cased; "cased_*", "multi_cased_*", "wwm_cased_*"
    are not.
    """
    if not name:
        return None
    base = os.path.basename(os.path.normpath(str(name))).lower()
    if re.search(r"(?<![a-z])uncased", base):
        return True
    if re.search(r"(?<![a-z])cased", base):
        return False
    if re.search(r"(?<![a-z])(multilingual|chinese)_l-\d", base):
        return True
    return None


def infer_lower_case(vocab: Sequence[str], name: str | None = None, known: bool | None = None) -> bool:
    """Whether text must be lower-cased for this vocabulary.

    `known`, the registry's casing of a released checkpoint, decides when given; then
    the checkpoint's name when it says (see `_lower_case_from_name`);
    otherwise the vocabulary does: an uncased vocabulary has essentially no
    token that `str.lower()` changes (BERT-Base uncased: none), a cased one has
    thousands (BERT-Base cased: about one token in seven).

    Example:
        >>> infer_lower_case(["[UNK]", "the", "##s"], name="uncased_L-12_H-768_A-12")
        True
        >>> infer_lower_case(["[UNK]", "The", "the", "Paris"])
        False
    """
    if known is not None:
        return known
    from_name = _lower_case_from_name(name)
    if from_name is not None:
        return from_name
    ordinary = [t for t in vocab if t and not (t.startswith("[") and t.endswith("]"))]
    upper = sum(1 for t in ordinary if t != t.lower())
    return upper <= 0.01 * len(ordinary)


def check_lower_case(value, *, allow_none: bool = True) -> bool | None:
    """`value` as a casing override: True, False or (when allowed) None.

    Anything else is refused rather than tested for truth: `"false"` and `"no"`
    are truthy, so they would silently mean lower-casing.

    Raises:
        TypeError: `value` is not a bool (numpy's included) or None.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    allowed = "True, False or None (None: from the checkpoint)" if allow_none else "True or False"
    raise InvalidType(f"lower_case must be {allowed}; got {value!r}")


def resolve_lower_case(vocab: Sequence[str], name: str | None, override: bool | None, *,
                       known: bool | None = None) -> bool:
    """The casing to use: `override` when given, else `infer_lower_case`.

    An override that contradicts the checkpoint is obeyed but logged as a
    warning on the `bert_tf` logger: the model then sees tokens it was not
    trained on.

    Raises:
        TypeError: `override` is not True, False or None.
    """
    override = check_lower_case(override)
    inferred = infer_lower_case(vocab, name, known)
    if override is None:
        return inferred
    if override != inferred:
        source = ("the registry of Google's checkpoints" if known is not None else
                  f"its name {name!r}" if _lower_case_from_name(name) is not None else "its vocabulary")
        logger.warning(
            "lower_case=%s contradicts the checkpoint, which is %s according to %s; "
            "using lower_case=%s as asked",
            override,
            "uncased" if inferred else "cased",
            source,
            override,
        )
    return override


__all__ = ["check_lower_case", "infer_lower_case", "load_vocab", "resolve_lower_case"]
