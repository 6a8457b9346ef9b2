"""The embedding options and their allowed values, in one place (and importable without TensorFlow)."""

from __future__ import annotations

from typing import Sequence

COMBINE_CHOICES = ("sum", "mean", "concat")
SUBWORD_POOLING_CHOICES = ("mean", "first", "last")
SENTENCE_STRATEGIES = ("mean", "cls", "pooled", "max")
DEFAULT_LAYERS = (-4, -3, -2, -1)


def check_choice(name: str, value, choices: Sequence[str]) -> None:
    """Raises `ValueError("combine must be one of sum, mean, concat; got 'avg'")` style errors."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
