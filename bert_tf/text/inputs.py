"""What the API accepts as texts, checked in one place for every entry point.

A list, tuple, numpy array or any iterable of `str`. A bare string, bytes, None or
a non-iterable is refused with a message that says what to pass; an element that
is not a `str` is refused with its index. Lone surrogates, which cannot be encoded
as UTF-8, become U+FFFD: the same length, so code-point offsets stay right (the
tokenizer drops U+FFFD anyway).
"""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from bert_tf.errors import InvalidType

_SURROGATES = re.compile("[\ud800-\udfff]")


def split_line(raw: bytes) -> bytes:
    """One line of a text file without its ending: `\n`, or `\r\n` (a stray `\r` inside stays)."""
    if raw.endswith(b"\n"):
        raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
    return raw


def decode_line(raw: bytes) -> tuple[str | None, str | None]:
    """`(text, None)` for UTF-8 bytes, else `(None, reason)` naming the first bad byte: how every
    reader of text files (the CLI's, Beam's) turns a line into a text or a reported problem."""
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 4]!r})"


def _container(texts) -> Iterable:
    if texts is None:
        raise InvalidType("expected a list of strings, got None")
    if isinstance(texts, (str, bytes, bytearray)):
        raise InvalidType(f"expected a list of strings, got a single {type(texts).__name__}; "
                          f"wrap it in a list: [text]")
    try:
        iter(texts)
    except TypeError:
        raise InvalidType(f"expected a list of strings, got {type(texts).__name__}") from None
    return texts


def check_text(index: int, item) -> str:
    """`item` as a clean str, or a TypeError naming `sentences[index]`."""
    if not isinstance(item, str):
        hint = " (decode bytes first)" if isinstance(item, (bytes, bytearray)) else ""
        raise InvalidType(f"sentences[{index}] is {type(item).__name__}, expected str{hint}")
    return _SURROGATES.sub("\ufffd", str(item))


def iter_texts(texts) -> Iterator[str]:
    """Checks and cleans texts one at a time, as they are read (for streams)."""
    for index, item in enumerate(_container(texts)):
        yield check_text(index, item)


class CheckedTexts(list):
    """A list of texts that `checked_texts` has already checked and cleaned: passed on through the
    layers of a call (`get_bert_embeddings` -> `embed_words` -> the chunks) it is not checked again."""


def checked_texts(texts) -> CheckedTexts:
    """Every text checked and cleaned before any is used (once: a `CheckedTexts` comes back as it is).

    Example:
        >>> checked_texts(("a", "b\\ud800"))
        ['a', 'b\ufffd']

    Raises:
        TypeError: not a list of strings; the message names the bad index or says what to pass.
    """
    return texts if isinstance(texts, CheckedTexts) else CheckedTexts(iter_texts(texts))


def is_sized(texts) -> bool:
    """Whether `texts` can be checked whole up front without consuming a stream."""
    return isinstance(texts, (list, tuple)) or (hasattr(texts, "__len__") and hasattr(texts, "__getitem__")
                                                and not hasattr(texts, "__next__"))
