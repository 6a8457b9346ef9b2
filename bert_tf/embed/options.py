"""How word and sentence vectors are made: `EmbeddingOptions`, checked once.

The Python API, the command line, the SavedModel export and the Beam pipeline all
take these options under these names. `EmbeddingOptions(...)` checks what can be
checked alone (allowed values, types); `resolve(config)` checks the rest against a
model (layer indices, widths, sequence length) and is what the embedder runs on.
Importable without TensorFlow.
"""

from __future__ import annotations

import dataclasses
import logging
import numbers
from typing import Any, Sequence

from bert_tf.errors import InvalidType, InvalidValue

logger = logging.getLogger("bert_tf")

COMBINE_CHOICES = ("sum", "mean", "concat")
SUBWORD_POOLING_CHOICES = ("mean", "first", "last")
SENTENCE_STRATEGIES = ("mean", "cls", "pooled", "max")
#: What `layers=None` combines: the last four layers (the notebooks' choice, after the BERT
#: paper's feature-based experiments), or every layer of a model with fewer than four.
DEFAULT_LAYERS = (-4, -3, -2, -1)
#: The shortest model input: [CLS], [SEP] and a few pieces, so windows can overlap.
MIN_SEQ_LENGTH = 8


def check_choice(name: str, value, choices: Sequence[str]) -> None:
    """Raises `InvalidValue("combine must be one of sum, mean, concat; got 'avg'")` style errors (a
    `UserError` and a `ValueError`)."""
    if value not in choices:
        raise InvalidValue(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _layer_tuple(name: str, layers) -> tuple[int, ...]:
    if _is_int(layers):
        layers = (layers,)
    if isinstance(layers, (str, bytes)):
        raise InvalidType(f"{name} must be a sequence of integers; got {layers!r}")
    try:
        layers = tuple(layers)
    except TypeError:
        raise InvalidType(f"{name} must be a sequence of integers; got {layers!r}") from None
    if not layers:
        raise InvalidValue(f"{name} must name at least one hidden layer")
    for layer in layers:
        if not _is_int(layer):
            raise InvalidValue(f"{name} must be integers (0 is the embedding output, -1 the last layer); "
                               f"got {layer!r}")
    return tuple(int(x) for x in layers)


@dataclasses.dataclass(frozen=True)
class EmbeddingOptions:
    """The options of one embedding run, as written by the caller.

    Attributes:
        layers: hidden-state indices combined into word vectors; 0 is the embedding output,
            1..L the layers, negative counts from the last (-1). None: `DEFAULT_LAYERS`, or
            every layer of a model with fewer than four.
        combine: "sum", "mean" or "concat" over `layers`.
        subword_pooling: "mean", "first" or "last" piece of each word.
        dim: keep the first `dim` components of word vectors (None keeps all).
        sentence_strategy: "mean" or "max" over the tokens of `sentence_layer`, its "cls"
            token, or the "pooled" output; None computes no sentence vector.
        sentence_layer: the hidden state the sentence vector is made from (default -2).
        max_seq_length: the longest model input in pieces, [CLS] and [SEP] included; longer
            texts are embedded in overlapping windows. None: the checkpoint's limit (512).
        batch_size: the most texts per model call; None fills calls by padded positions.

    Example:
        >>> EmbeddingOptions(combine="avg")
        Traceback (most recent call last):
        ValueError: combine must be one of sum, mean, concat; got 'avg'
    """

    layers: tuple[int, ...] | None = None
    combine: str = "sum"
    subword_pooling: str = "mean"
    dim: int | None = None
    sentence_strategy: str | None = "mean"
    sentence_layer: int = -2
    max_seq_length: int | None = None
    batch_size: int | None = None

    def __post_init__(self):
        if self.layers is not None:
            object.__setattr__(self, "layers", _layer_tuple("layers", self.layers))
        check_choice("combine", self.combine, COMBINE_CHOICES)
        check_choice("subword_pooling", self.subword_pooling, SUBWORD_POOLING_CHOICES)
        if self.sentence_strategy is not None:
            check_choice("sentence_strategy", self.sentence_strategy, SENTENCE_STRATEGIES)
        (layer,) = _layer_tuple("sentence_layer", self.sentence_layer)
        object.__setattr__(self, "sentence_layer", layer)
        if self.dim is not None:
            if not _is_int(self.dim) or self.dim < 1:
                raise InvalidValue(f"dim must be a positive integer or None; got {self.dim!r}")
            object.__setattr__(self, "dim", int(self.dim))
        if self.batch_size is not None:
            if not _is_int(self.batch_size) or self.batch_size < 1:
                raise InvalidValue(f"batch_size must be a positive integer or None; got {self.batch_size!r}")
            object.__setattr__(self, "batch_size", int(self.batch_size))
        if self.max_seq_length is not None:
            if not _is_int(self.max_seq_length):
                raise InvalidValue(f"max_seq_length must be an integer; got {self.max_seq_length!r}")
            object.__setattr__(self, "max_seq_length", int(self.max_seq_length))

    def replace(self, **changes) -> "EmbeddingOptions":
        """A copy with some options changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The options as written, JSON-ready (layers as a list)."""
        out = dataclasses.asdict(self)
        out["layers"] = None if self.layers is None else list(self.layers)
        return out

    def resolve(self, config) -> "ResolvedOptions":
        """Checks the options against a model; returns what the embedder runs on.

        Raises:
            ValueError: a layer the model does not have, the same layer twice, a `dim` wider
                than the vectors, a `max_seq_length` outside 8..max_position_embeddings.
        """
        n_states = config.num_hidden_layers + 1
        layers = self.layers
        if layers is None:
            layers = DEFAULT_LAYERS if config.num_hidden_layers >= len(DEFAULT_LAYERS) else \
                tuple(range(-config.num_hidden_layers, 0))
        states = _hidden_states("layers", layers, n_states)
        (sentence_state,) = _hidden_states("sentence_layer", (self.sentence_layer,), n_states)
        width = config.hidden_size * (len(states) if self.combine == "concat" else 1)
        if self.dim is not None and self.dim > width:
            raise InvalidValue(f"dim={self.dim} is larger than the vectors this model makes ({width}: hidden size "
                               f"{config.hidden_size} with these layers and combine); use dim=None or at most {width}")
        if self.dim is not None and self.dim < width:
            logger.info("dim=%d keeps the first %d of %d components and discards the rest; "
                        "use dim=None for full vectors", self.dim, self.dim, width)
        limit = config.max_position_embeddings
        max_seq_length = min(limit, 512) if self.max_seq_length is None else self.max_seq_length
        if not MIN_SEQ_LENGTH <= max_seq_length <= limit:
            raise InvalidValue(f"max_seq_length must be an integer from {MIN_SEQ_LENGTH} to {limit} "
                               f"(this checkpoint's max_position_embeddings); got {self.max_seq_length!r}")
        return ResolvedOptions(self, states, sentence_state, width, self.dim or width, max_seq_length, n_states)


def _hidden_states(name: str, layers: tuple[int, ...], n_states: int) -> tuple[int, ...]:
    out = []
    for layer in layers:
        if not -n_states <= layer < n_states:
            hint = "; leave layers unset for all of them" if name == "layers" and n_states - 1 < 4 else ""
            raise InvalidValue(f"{name} must be integers from {-n_states} to {n_states - 1} for this "
                               f"{n_states - 1}-layer model (0 is the embedding output, -1 the last layer); "
                               f"got {layer!r}{hint}")
        out.append(layer % n_states)
    if len(set(out)) != len(out):
        raise InvalidValue(f"{name} names the same layer twice: {layers!r}")
    return tuple(out)


@dataclasses.dataclass(frozen=True)
class ResolvedOptions:
    """`EmbeddingOptions` checked against one model: indices made non-negative, sizes known.

    Attributes:
        options: what the caller wrote.
        hidden_states: the hidden-state indices word vectors combine (0 = embedding output).
        sentence_state: the hidden-state index of the sentence vector.
        width: the word vectors' width before `dim`.
        vector_size: their width after `dim`.
        max_seq_length: the longest model input, resolved.
        num_states: the model's hidden states (its layers + the embedding output).
    """

    options: EmbeddingOptions
    hidden_states: tuple[int, ...]
    sentence_state: int
    width: int
    vector_size: int
    max_seq_length: int
    num_states: int

    @property
    def layers(self) -> tuple[int, ...]:
        """`hidden_states` counted from the last layer (-1), the form options are written in: what
        the vectors are recorded as (`VectorSpace`), shown (the default layers) and exported."""
        return tuple(i - self.num_states for i in self.hidden_states)

    @property
    def sentence_layer(self) -> int:
        """`sentence_state` counted from the last layer (-1)."""
        return self.sentence_state - self.num_states

    @property
    def span(self) -> int:
        """Pieces per window: the model input less [CLS] and [SEP]."""
        return self.max_seq_length - 2
