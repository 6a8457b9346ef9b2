"""`VectorSpace`: whether two sets of vectors can be compared, decided in one place.

A cosine between two vectors means something only when the same model made both the
same way: the same weights (the checkpoint's fingerprint, wherever its folder lives),
the same casing, the same compute precision and the same options, resolved against the
model (`layers=None` and `layers=(-4, -3, -2, -1)` make the same vectors). How texts are
grouped into model calls (the batch plan) changes no vector in any precision: int8 rounds
each token's input over its own range (`bert_tf.model.quantize`).

Every artefact records its `VectorSpace` (the index manifest, the Parquet schema metadata
and manifest of a Beam run, the SavedModel's metadata) and every reader compares it with
the one it is about to use (`differences`), refusing a mismatch with one line that names
what differs. Standard library and `bert_tf.embed.options` only: readers of corpus outputs
need neither TensorFlow, Beam nor faiss to import it.

Example:
    >>> space = embedder.space()  # the defaults; embedder.space(options) for others
    >>> space.compatible(embedder.space(EmbeddingOptions(layers=(-1,))))
    False
    >>> space.differences(embedder.space(EmbeddingOptions(layers=(-1,))))
    {'layers': ((-4, -3, -2, -1), (-1,))}
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from bert_tf.embed.options import EmbeddingOptions, ResolvedOptions
from bert_tf.errors import InvalidValue

#: The version of `to_dict`'s form; `from_dict` refuses another.
FORMAT_VERSION = 1
#: The batch plan an earlier bert_tf recorded for int8, whose input range was per model call: read
#: and dropped, since int8 vectors no longer depend on it (those of such an artefact differ from
#: today's by int8 rounding, as its vectors did from one batch plan to another).
LEGACY_BATCH_PLAN = ("batch_size", "batch_positions")
#: What `describe_differences` calls the checkpoint (fingerprints, or paths where one is unknown).
CHECKPOINT = "checkpoint"


@dataclasses.dataclass(frozen=True)
class VectorSpace:
    """What makes vectors comparable, as one frozen value.

    Attributes:
        fingerprint: the checkpoint's content hash (`CheckpointDir.fingerprint`); None when unknown,
            and then the checkpoint is compared by `path`.
        lower_case: the tokenizer's casing.
        precision: what the encoder computed in ("float32", "bfloat16", "float16", "int8", "int8-litert";
            never "auto").
        layers, combine, subword_pooling: how word vectors are made, `layers` counted from the last (-1).
        vector_size: the word vectors' width (`dim` resolved).
        sentence_strategy, sentence_layer: how sentence vectors are made (`sentence_layer` from the last).
        max_seq_length: the longest model input, resolved: it decides where long texts are windowed.
        name: the checkpoint's folder name, for messages (not compared).
        path: the checkpoint's absolute path when recorded, to load it again (not compared when
            both fingerprints are known: a moved checkpoint makes the same vectors).
    """

    fingerprint: str | None
    lower_case: bool
    precision: str
    layers: tuple[int, ...]
    combine: str
    subword_pooling: str
    vector_size: int
    sentence_strategy: str | None
    sentence_layer: int
    max_seq_length: int
    name: str | None = dataclasses.field(default=None, compare=False)
    path: str | None = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    @classmethod
    def of(cls, resolved: ResolvedOptions, *, fingerprint: str | None, lower_case: bool, precision: str,
           path: str | None) -> "VectorSpace":
        """The space of vectors made with `resolved` options by the model these arguments describe
        (`BertEmbedder.space` fills them in)."""
        options = resolved.options
        space = cls(fingerprint, lower_case, precision, resolved.layers, options.combine, options.subword_pooling,
                    resolved.vector_size, options.sentence_strategy, resolved.sentence_layer, resolved.max_seq_length)
        return space.at(path)

    def at(self, path: str | None) -> "VectorSpace":
        """The same space with its checkpoint recorded at `path` (a folder or a URL), named after it."""
        name = os.path.basename(os.path.normpath(path)) if path else self.name
        return dataclasses.replace(self, path=path, name=name)

    def options(self) -> EmbeddingOptions:
        """The `EmbeddingOptions` that make vectors of this space (with the model it names): what
        an index embeds its queries with."""
        return EmbeddingOptions(layers=self.layers, combine=self.combine, subword_pooling=self.subword_pooling,
                                dim=self.vector_size, sentence_strategy=self.sentence_strategy,
                                sentence_layer=self.sentence_layer, max_seq_length=self.max_seq_length)

    # ------------------------------------------------------------------ comparing

    def differences(self, other: "VectorSpace") -> dict[str, tuple[Any, Any]]:
        """`{what: (this value, other's value)}` for everything that makes the two spaces' vectors
        differ; empty when they are comparable. The checkpoint is compared by fingerprint, or by
        path (resolved) when either fingerprint is unknown."""
        out: dict[str, tuple[Any, Any]] = {}
        if self.fingerprint and other.fingerprint:
            if self.fingerprint != other.fingerprint:
                out[CHECKPOINT] = (self._checkpoint(), other._checkpoint())
        elif _real(self.path) != _real(other.path):
            out[CHECKPOINT] = (self._checkpoint(), other._checkpoint())
        for field in dataclasses.fields(self):
            if field.compare and field.name != "fingerprint":
                a, b = getattr(self, field.name), getattr(other, field.name)
                if a != b:
                    out[field.name] = (a, b)
        return out

    def compatible(self, other: "VectorSpace") -> bool:
        """True when vectors of the two spaces can be compared."""
        return not self.differences(other)

    def describe_differences(self, other: "VectorSpace", *, this: str = "this", that: str = "the other") -> str:
        """The differences in one line: `precision is 'int8' in the index, 'float32' in the query; ...`."""
        return "; ".join(f"{name} is {_shown(name, a)} in {this}, {_shown(name, b)} in {that}"
                         for name, (a, b) in self.differences(other).items())

    def _checkpoint(self) -> str:
        where = self.path or self.name or "an unnamed checkpoint"
        return f"{where} (fingerprint {self.fingerprint[:12]})" if self.fingerprint else where

    # ------------------------------------------------------------------ JSON

    def to_dict(self, *, with_path: bool = True) -> dict[str, Any]:
        """JSON-ready (`layers` a list). `with_path=False` leaves the path out (an export shipped to
        a server: the path of the machine that built it means nothing there)."""
        out = {"version": FORMAT_VERSION, **dataclasses.asdict(self)}
        out["layers"] = list(self.layers)
        if not with_path:
            out["path"] = None
        return out

    @classmethod
    def from_dict(cls, data: Any) -> "VectorSpace":
        """The value `to_dict` wrote (or an earlier bert_tf's, whose int8 batch plan is dropped:
        `LEGACY_BATCH_PLAN`).

        Raises:
            ValueError: not such a dict, another version of it, or fields missing or unknown (the
                caller says which artefact and how to remake it).
        """
        if not isinstance(data, dict):
            raise InvalidValue("no vector space is recorded")
        if data.get("version") != FORMAT_VERSION:
            raise InvalidValue(f"the recorded vector space is of version {data.get('version')!r}; this bert_tf "
                               f"reads version {FORMAT_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        given = set(data) - {"version", *LEGACY_BATCH_PLAN}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        if given - names or required - given:
            odd = sorted((given - names) | (required - given))
            raise InvalidValue(f"the recorded vector space has unknown or missing field(s) {', '.join(odd)}")
        try:
            return cls(**{k: data[k] for k in given})
        except (TypeError, ValueError) as e:
            raise InvalidValue(f"the recorded vector space cannot be read ({e})") from None


def space_of_identity(identity: Any, options: Any) -> VectorSpace:
    """The space of an artefact of the format before `VectorSpace` (an index manifest of version 1, a
    corpus run's metadata of format 1): the embedder's `identity` and the options as written, resolved
    against the checkpoint's `bert_config.json` at the recorded path (no model is loaded).

    Raises:
        ValueError: not such a record, or its checkpoint's config is no longer at the recorded path.
    """
    from bert_tf.model.config import load_config

    if not isinstance(identity, dict) or not isinstance(options, dict):
        raise InvalidValue("it records no vector space")
    path = identity.get("path")
    config = os.path.join(path, "bert_config.json") if isinstance(path, str) else None
    if config is None or not os.path.isfile(config):
        raise InvalidValue(f"it was written by an earlier bert_tf, whose options can only be read with the "
                           f"checkpoint's bert_config.json, and the checkpoint {path} is no longer there")
    try:
        resolved = EmbeddingOptions(**options).resolve(load_config(config))
    except (TypeError, ValueError) as e:
        raise InvalidValue(f"it was written by an earlier bert_tf, with options that cannot be read ({e})") from None
    return VectorSpace.of(resolved, fingerprint=identity.get("fingerprint"), lower_case=identity.get("lower_case"),
                          precision=identity.get("precision") or "float32", path=os.path.abspath(path))


def _real(path: str | None) -> str | None:
    return os.path.realpath(path) if path else None


def _shown(name: str, value) -> str:
    if name == CHECKPOINT:
        return value
    if name == "layers":
        return ",".join(map(str, value))
    return repr(value)
