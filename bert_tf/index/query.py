"""Checking what a person types as a query: the result count, empty texts, a `[[marked]]` occurrence."""

from __future__ import annotations

import numpy as np

from bert_tf.errors import InvalidType, InvalidValue


def marked_span(sentence: str) -> tuple[str, tuple[int, int] | None]:
    """`sentence` without the `[[ ]]` around one marked word, and that word's `(start, end)` in the result."""
    start = sentence.find("[[")
    end = sentence.find("]]", start + 2) if start >= 0 else -1
    if start < 0 or end < 0:
        return sentence, None
    if "[[" in sentence[end:]:
        raise InvalidValue("mark one occurrence only: the query has more than one [[...]]")
    inner = sentence[start + 2:end]
    return sentence[:start] + inner + sentence[end + 2:], (start, start + len(inner))


def check_query(**texts) -> None:
    """Refuses a query's text that is not a str, or is empty or blank (named by its keyword)."""
    for name, text in texts.items():
        if not isinstance(text, str):
            raise InvalidType(f"the query's {name} must be a str; got {type(text).__name__}")
        if not text.strip():
            raise InvalidValue(f"the query's {name} is empty: give the {name} to search with")


def check_k(k) -> None:
    """Refuses a result count that is not a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidValue(f"k must be a positive integer; got {k!r}")
