"""The errors that are the user's to fix, apart from the bugs.

A `UserError` is a mistake the user can correct (an option value, a text, a path, a file's contents, a
missing package): `bert-tf` prints its message as one line, without a traceback. Any other exception,
a plain `ValueError` or `TypeError` included, is a bug or a case nobody foresaw, and keeps its traceback.

`InvalidValue` and `InvalidType` are also `ValueError` and `TypeError`, so a caller of the Python API
that catches the builtin type catches them as before. The library's other typed errors
(`CheckpointError`, `ConversionError`, `OutputError`, `CheckpointNotFoundError`, `DownloadError`, ...)
are `UserError`s too.

Standard library only, and imports nothing of bert_tf: every module may raise these.

Example:
    >>> from bert_tf.errors import InvalidValue, UserError
    >>> try:
    ...     raise InvalidValue("combine must be one of sum, mean, concat; got 'avg'")
    ... except UserError as e:
    ...     print(e, isinstance(e, ValueError))
    combine must be one of sum, mean, concat; got 'avg' True
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do, in one line.

    The CLI prints it without a traceback (with `--verbose` it shows the traceback too).
    """


class InvalidValue(UserError, ValueError):
    """A value the user gave (an option, a path, a file's contents) that cannot be used."""


class InvalidType(UserError, TypeError):
    """An argument of the wrong type given to the Python API (e.g. one string where a list is expected)."""


__all__ = ["InvalidType", "InvalidValue", "UserError"]
