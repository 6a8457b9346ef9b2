"""`BertModelHandler`: the RunInference model handler, one `BertEmbedder` per worker process.

RunInference keeps the model in Beam's `shared.Shared` cache: `load_model` runs once
per worker process and every thread of that process uses the same embedder. It comes
from the library's per-process model cache (`get_embedder`), so a launcher that loaded
it to check the options (the DirectRunner in-process) does not load it a second time.

Batching is by word pieces, not by element count. Beam's `BatchElements` sizes each
batch with `estimated_pieces` (the pieces are not known before the tokenizer runs,
so the size of a text is estimated from its UTF-8 length), and inside the handler
the embedder's own planner (`bert_tf.embed.batching.plan`) sorts the batch
by its real piece counts and cuts it into model calls of `MAX_BATCH_POSITIONS`
padded positions: a batch of long texts and one of short texts cost alike, and
short texts are never padded to a long one's length.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Iterable, Sequence

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from bert_tf import interrupts
from bert_tf.beam.records import DeadLetter, Embedding
from bert_tf.embed.batching import MAX_BATCH_POSITIONS
from bert_tf.embed.options import EmbeddingOptions, check_choice
from bert_tf.errors import InvalidType
from bert_tf.model.precision import PRECISIONS

logger = logging.getLogger("bert_tf")

#: Estimated word pieces per Beam batch: 16 full model calls, about as many texts as
#: `bert-tf embed` sorts by length together (1,024 lines of ~30 pieces).
BATCH_PIECES = 16 * MAX_BATCH_POSITIONS
#: What a corpus record holds of `BertEmbedder.embed`'s outputs.
OUTPUTS = ("word_vectors", "sentence_vectors")
#: UTF-8 bytes per word piece, roughly, for English (4-5 letters a piece) and CJK (3 bytes, one piece).
BYTES_PER_PIECE = 4


@dataclasses.dataclass(frozen=True)
class EmbedSpec:
    """Which model and options a pipeline embeds with: small, picklable, sent to every worker.

    Attributes:
        checkpoint: a local checkpoint folder or any `tf.io.gfile` URL (`gs://...`); remote ones are
            copied once per worker machine (`bert_tf.store.remote.local_checkpoint`). None resolves
            the default on the worker (`BERT_TF_CHECKPOINT`, ...), which suits local runs only.
        options: the embedding options (`get_bert_embeddings`' names).
        lower_case: True or False overrides the checkpoint's casing; None infers it.
        precision: one of `PRECISIONS` ("float32", "bfloat16", "float16", "auto"), as for
            `BertEmbedder.from_checkpoint`; `embed_corpus` pins "auto" to what the launcher chose.
    """

    checkpoint: str | None = None
    options: EmbeddingOptions = EmbeddingOptions()
    lower_case: bool | None = None
    precision: str = "float32"

    def __post_init__(self):
        check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.options, EmbeddingOptions):
            raise InvalidType(f"options must be an EmbeddingOptions; got {type(self.options).__name__}")
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", str(self.checkpoint))

    def load(self):
        """This spec's `BertEmbedder`: `get_embedder`'s, loaded once per process and shared by its
        threads (remote checkpoints copied to this machine first). A launcher that loaded it to check
        the options (the DirectRunner in process) does not load it a second time."""
        from bert_tf.embed.api import get_embedder
        from bert_tf.store.remote import local_checkpoint

        local = None if self.checkpoint is None else local_checkpoint(self.checkpoint)
        embedder = get_embedder(local, lower_case=self.lower_case, precision=self.precision)
        embedder.resolve(embedder.options(self.options))  # bad options fail at load, not per batch
        return embedder


def estimated_pieces(element: tuple) -> int:
    """A text's word pieces, estimated before tokenizing (its UTF-8 length), plus [CLS] and [SEP]."""
    return len(element[1].encode("utf-8", "surrogatepass")) // BYTES_PER_PIECE + 2


def embeddings_of(batch: Sequence[tuple], result) -> list[Embedding]:
    """One `Embedding` per `(id, text)` or `(id, text, fields)` of `batch`, sliced from the columns of
    `BertEmbedder.embed` (no per-word objects in between: the rows are views of the batch's columns)."""
    splits = result.word_splits
    return [Embedding(element[0], element[1], result.words[splits[t]:splits[t + 1]],
                      result.starts[splits[t]:splits[t + 1]].astype(np.int32),
                      result.ends[splits[t]:splits[t + 1]].astype(np.int32),
                      result.word_vectors[splits[t]:splits[t + 1]], result.sentence_vectors[t],
                      element[2] if len(element) > 2 else {})
            for t, element in enumerate(batch)]


class BertModelHandler(ModelHandler):
    """Embeds `(id, text)` pairs or `(id, text, fields)` (checked `str` texts, as `check_record` gives them)
    with a `BertEmbedder`; yields `Embedding`s (with the fields).

    A batch that fails is embedded again one text at a time, so one bad text becomes a
    `DeadLetter` (with the error) instead of failing the bundle or its neighbours.

    Args:
        spec: the model and options.
        batch_pieces: estimated word pieces per batch (see `estimated_pieces`).

    Example:
        >>> from apache_beam.ml.inference.base import RunInference
        >>> pairs | RunInference(BertModelHandler(EmbedSpec("gs://bucket/uncased_L-12_H-768_A-12")))
    """

    def __init__(self, spec: EmbedSpec, *, batch_pieces: int = BATCH_PIECES):
        super().__init__(min_batch_size=batch_pieces, max_batch_size=batch_pieces, element_size_fn=estimated_pieces)
        self.spec = spec

    def load_model(self):
        return self.spec.load()

    def run_inference(self, batch: Sequence[tuple], model, inference_args: dict | None = None
                      ) -> Iterable[Embedding | DeadLetter]:
        interrupts.check()  # one that Python could not raise where it landed stops the run here
        options = model.options(self.spec.options)
        try:
            # One chunk: the batch is planned as a whole, so its model calls are the ones `embed` makes.
            (result,) = model.iter_batches([element[1] for element in batch], OUTPUTS, options, progress=False,
                                           chunk_size=max(len(batch), 1))
        except Exception as error:  # noqa: BLE001 - retried one by one below, so the culprit is named
            if interrupts.interrupt_behind(error) is not None:  # Ctrl-C or SIGTERM met inside: end the run
                raise
            logger.warning("a batch of %d texts failed; embedding them one at a time", len(batch), exc_info=True)
            return [self._one(model, element, options) for element in batch]
        return embeddings_of(batch, result)

    @staticmethod
    def _one(model, element: tuple, options):
        try:
            (result,) = model.iter_batches([element[1]], OUTPUTS, options, progress=False)
        except Exception as e:  # noqa: BLE001 - the record becomes a dead letter, the pipeline goes on
            if interrupts.interrupt_behind(e) is not None:
                raise
            return DeadLetter(element[0], f"embedding failed: {type(e).__name__}: {e}", element[1])
        return embeddings_of([element], result)[0]

    def get_metrics_namespace(self) -> str:
        return "bert_tf.RunInference"

    def get_num_bytes(self, batch) -> int:
        return sum(len(element[1]) for element in batch)  # the default pickles the whole batch to measure it
