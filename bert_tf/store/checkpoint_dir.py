"""`CheckpointDir`: one checkpoint, resolved once, with everything a load needs.

The path, the TF1 prefix, the config, the vocabulary, the casing and where the
checkpoint came from are worked out here and passed along, rather than recomputed
by every module that loads one.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from pathlib import Path


logger = logging.getLogger("bert_tf")


@dataclasses.dataclass(frozen=True)
class CheckpointDir:
    """A Google-layout checkpoint directory.

    Attributes:
        path: the directory.
        prefix: the TF1 checkpoint prefix inside it (`path/bert_model.ckpt` for Google's zips).
        name: the directory's name ("uncased_L-12_H-768_A-12").
        source: how it was chosen: "argument", "BERT_TF_CHECKPOINT", "default" or "offline".
    """

    path: Path
    prefix: Path
    name: str
    source: str

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> "CheckpointDir":
        """The checkpoint `path` names, or the default one (see `resolve_checkpoint`).

        Raises:
            CheckpointNotFoundError: nothing found; the message says how to get one.
            CheckpointError: the directory is not a checkpoint (names what is missing).
        """
        from bert_tf.model.checkpoint import resolve_checkpoint_prefix
        from bert_tf.store.registry import OFFLINE_MODEL
        from bert_tf.store.resolve import resolve_checkpoint

        directory, prefix = resolve_checkpoint_prefix(resolve_checkpoint(path))
        directory = Path(directory)
        name = directory.resolve().name
        source = ("argument" if path is not None else "BERT_TF_CHECKPOINT" if os.environ.get("BERT_TF_CHECKPOINT")
                  else "offline" if name == OFFLINE_MODEL else "default")
        return cls(directory, Path(prefix), name, source)

    @functools.cached_property
    def config(self):
        """The `BertConfig` of `bert_config.json`."""
        from bert_tf.model.config import load_config

        return load_config(self.path / "bert_config.json")

    @functools.cached_property
    def vocab(self) -> list[str]:
        """`vocab.txt`, checked against the config (read once).

        Raises:
            CheckpointError: a vocabulary of the wrong size or without BERT's special tokens.
        """
        from bert_tf.model.checkpoint import CheckpointError
        from bert_tf.text.vocab import load_vocab

        vocab = load_vocab(self.path / "vocab.txt")
        if len(vocab) != self.config.vocab_size:
            raise CheckpointError(f"{self.path}: vocab.txt has {len(vocab)} entries but bert_config.json says "
                                  f"vocab_size {self.config.vocab_size}; do they belong to the same checkpoint?")
        seen = set(vocab)
        missing = [t for t in ("[CLS]", "[SEP]", "[UNK]", "[PAD]") if t not in seen]
        if missing:
            raise CheckpointError(f"{self.path}: vocab.txt lacks the special token(s) {', '.join(missing)}")
        if len(seen) != len(vocab):  # the tokenizer keeps the first id of a repeated token, as Google's does
            logger.warning("%s: vocab.txt lists %d token(s) more than once; the first id of each is used",
                           self.path, len(vocab) - len(seen))
        return vocab

    @functools.cached_property
    def fingerprint(self) -> str:
        """A short content hash of the checkpoint: its config, its vocabulary and the TF1 index
        (which holds every variable's shape and CRC32C), so equal fingerprints mean equal weights
        wherever the directory lives. Indexes and corpus outputs record it to refuse mixing models."""
        import hashlib

        digest = hashlib.sha256()
        for path in (self.path / "bert_config.json", self.path / "vocab.txt", Path(f"{self.prefix}.index")):
            digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
        return digest.hexdigest()[:16]

    def lower_case(self, override: bool | None = None) -> bool:
        """The casing: `override` when given; else the registry's for a known checkpoint, else the
        name's and vocabulary's (a warning when an override contradicts them)."""
        from bert_tf.store.registry import lower_case_for
        from bert_tf.text.vocab import resolve_lower_case

        return resolve_lower_case(self.vocab, self.name, override, known=lower_case_for(self.name))

    def load_encoder(self, *, strict: bool = True, return_report: bool = False, compute_dtype: str = "float32",
                     trained_layers: int = 0):
        """`(config, BertEncoder)` restored strictly from the checkpoint (see `model.checkpoint`),
        or `(config, encoder, report)` with `return_report`. The path is not resolved again.
        `compute_dtype="int8-litert"` gives a `litert.LiteEncoder` of the float32 encoder (converted
        once per checkpoint and cached), which does not train."""
        from bert_tf.errors import InvalidValue
        from bert_tf.model.checkpoint import restore_encoder
        from bert_tf.model.litert import PRECISION, LiteEncoder

        if compute_dtype == PRECISION:
            if trained_layers:
                raise InvalidValue(f"precision={PRECISION!r} cannot be fine-tuned; use 'float32' or 'bfloat16'")
            out = restore_encoder(self.config, self.prefix, strict=strict, return_report=return_report)
            lite = LiteEncoder.from_encoder(out[1], name=self.name, fingerprint=self.fingerprint)
            return (out[0], lite, *out[2:])
        return restore_encoder(self.config, self.prefix, strict=strict, return_report=return_report,
                               compute_dtype=compute_dtype, trained_layers=trained_layers)
