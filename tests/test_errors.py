"""`bert_tf.errors`: what is the user's to fix is a `UserError`, and still the builtin type API callers catch."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from bert_tf.embed.options import EmbeddingOptions, check_choice
from bert_tf.errors import InvalidType, InvalidValue, UserError
from bert_tf.files.output import OutputError
from bert_tf.index.layout import CorruptIndexError, IndexMismatchError
from bert_tf.model.checkpoint import CheckpointError
from bert_tf.model.convert import ConversionError
from bert_tf.store.messages import DownloadError
from bert_tf.store.resolve import CheckpointNotFoundError
from bert_tf.store.unpack import BadZip
from bert_tf.text.inputs import checked_texts

ROOT = Path(__file__).resolve().parents[1]

#: Every public exception class bert_tf defines -> the builtin type it keeps for API callers (None: none
#: but Exception). All are the user's to fix; `DownloadInterrupted` is a KeyboardInterrupt, not an error.
ERRORS = {
    InvalidValue: ValueError, InvalidType: TypeError,
    CheckpointError: ValueError, ConversionError: ValueError, CorruptIndexError: ValueError,
    IndexMismatchError: ValueError, OutputError: OSError, CheckpointNotFoundError: FileNotFoundError,
    DownloadError: None, BadZip: None,
}


@pytest.mark.parametrize("error, builtin", ERRORS.items(), ids=[e.__name__ for e in ERRORS])
def test_every_user_error_class_is_a_user_error_and_its_builtin_type(error, builtin):
    assert issubclass(error, UserError)
    if builtin is not None:
        assert issubclass(error, builtin)


def _is_exception_base(base: ast.expr) -> bool:
    name = base.id if isinstance(base, ast.Name) else base.attr if isinstance(base, ast.Attribute) else ""
    return name.endswith(("Error", "Exception")) or name in ("InvalidValue", "InvalidType", "BadZip")


def test_no_public_exception_class_of_bert_tf_is_left_unsorted():
    """A new public exception class in bert_tf/ must be sorted here: the user's to fix, or a bug."""
    defined = set()
    for path in (ROOT / "bert_tf").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.ClassDef) and not node.name.startswith("_") and node.name != "UserError"
                    and any(_is_exception_base(base) for base in node.bases)):
                defined.add(node.name)
    assert defined == {error.__name__ for error in ERRORS}


def test_output_error_keeps_its_os_error_fields():
    error = OutputError("out.jsonl", "No space left on device", 28)
    assert (error.errno, error.filename, str(error)) == (28, "out.jsonl", "cannot write out.jsonl: No space left on device")


def test_the_library_raises_user_errors_for_what_the_user_passed():
    with pytest.raises(InvalidValue, match="combine must be one of sum, mean, concat; got 'avg'") as caught:
        check_choice("combine", "avg", ("sum", "mean", "concat"))
    assert isinstance(caught.value, ValueError)  # API callers catching ValueError still catch it
    with pytest.raises(InvalidValue, match="dim must be a positive integer"):
        EmbeddingOptions(dim=0)
    with pytest.raises(InvalidType, match="wrap it in a list") as caught:
        checked_texts("one sentence")
    assert isinstance(caught.value, TypeError)
    with pytest.raises(InvalidType, match=r"sentences\[1\] is int"):
        checked_texts(["fine", 3])
