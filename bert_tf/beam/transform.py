"""`EmbedTexts`: a PCollection of `(id, text)` or `(id, text, fields)` in; embeddings and dead letters out,
none lost.

Every input element leaves by exactly one of the two outputs:

* `"embeddings"`: one `Embedding` per text (an empty text gives one with no words), with
  the record's fields (a dict; `corpus_format.record_fields` keeps its scalar ones);
* `"dead_letters"`: one `DeadLetter` per element that cannot be embedded, with its id
  and the reason: text that is not valid UTF-8, not a string, an element that is not
  an `(id, text)` pair, or a text the model failed on. `DeadLetter`s already in the
  input (a source's unreadable records) pass straight through.

A bad record never stops the pipeline. The counts are Beam metrics in the namespace
`bert_tf`: `embedded`, `dead_letters` and `words`.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference
from apache_beam.metrics import Metrics

from bert_tf.beam import progress
from bert_tf.beam.handler import BertModelHandler, EmbedSpec
from bert_tf.beam.records import DeadLetter, Embedding
from bert_tf.embed.corpus_format import record_fields
from bert_tf.errors import InvalidType
from bert_tf.text.inputs import check_text, decode_line

#: The Beam metrics namespace of the counts.
METRICS_NAMESPACE = "bert_tf"
DEAD = "dead_letters"


def check_record(element) -> tuple[str, str, dict] | DeadLetter:
    """`(id, clean text, fields)` for an embeddable `(id, text)` or `(id, text, fields)`, else the
    `DeadLetter` saying why. Fields that are not strings, numbers or true/false are left out."""
    if isinstance(element, DeadLetter):
        return element
    if not isinstance(element, (tuple, list)) or len(element) not in (2, 3):
        return DeadLetter(None, f"not an (id, text) pair: {type(element).__name__} {str(element)[:80]!r}")
    record_id, text, fields = (*element, {}) if len(element) == 2 else element
    if isinstance(record_id, int) and not isinstance(record_id, bool):
        record_id = str(record_id)
    if not isinstance(record_id, str):
        return DeadLetter(None, f"the id is {type(record_id).__name__} {record_id!r}, expected str",
                          text if isinstance(text, str) else None)
    if isinstance(text, (bytes, bytearray)):
        decoded, problem = decode_line(bytes(text))
        if problem is not None:
            return DeadLetter(record_id, problem, bytes(text).decode("utf-8", "backslashreplace"))
        text = decoded
    if not isinstance(text, str):
        return DeadLetter(record_id, f"the text is {type(text).__name__}, expected str")
    if not isinstance(fields, dict):
        return DeadLetter(record_id, f"the fields are {type(fields).__name__}, expected a dict", text)
    return record_id, check_text(0, text), record_fields(fields)[0]


class _Check(beam.DoFn):
    def __init__(self):
        self.dead = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, element):
        checked = check_record(element)
        if isinstance(checked, DeadLetter):
            self.dead.inc()
            progress.note("dead_letters")
            yield beam.pvalue.TaggedOutput(DEAD, checked)
        else:
            yield checked


class _Route(beam.DoFn):
    def __init__(self):
        self.embedded = Metrics.counter(METRICS_NAMESPACE, "embedded")
        self.words = Metrics.counter(METRICS_NAMESPACE, "words")
        self.dead = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, result):
        if isinstance(result, Embedding):
            self.embedded.inc()
            self.words.inc(len(result.words))
            progress.note("embedded")
            yield result
        else:
            self.dead.inc()
            progress.note("dead_letters")
            yield beam.pvalue.TaggedOutput(DEAD, result)


class EmbedTexts(beam.PTransform):
    """`(id, text)` pairs or `(id, text, fields)` to `Embedding`s, with a dead-letter output; the same vectors as
    `BertEmbedder`.

    Args:
        spec: the checkpoint and options (`EmbedSpec`), or a checkpoint path with `options` etc.
        batch_pieces: estimated word pieces per model batch (see `BertModelHandler`).

    Returns (from `expand`):
        `{"embeddings": PCollection[Embedding], "dead_letters": PCollection[DeadLetter]}`.

    Example:
        >>> out = pairs | EmbedTexts(EmbedSpec("gs://bucket/uncased_L-12_H-768_A-12",
        ...                                    EmbeddingOptions(layers=(-1,), dim=256)))
        >>> out["dead_letters"] | beam.Map(print)
    """

    def __init__(self, spec: EmbedSpec, *, batch_pieces: int | None = None):
        super().__init__()
        if not isinstance(spec, EmbedSpec):
            raise InvalidType(f"spec must be an EmbedSpec; got {type(spec).__name__}")
        self.spec = spec
        self.batch_pieces = batch_pieces

    def expand(self, pcoll):
        handler_args = {} if self.batch_pieces is None else {"batch_pieces": self.batch_pieces}
        checked = pcoll | "Check" >> beam.ParDo(_Check()).with_outputs(DEAD, main="texts")
        results = checked.texts | "Embed" >> RunInference(BertModelHandler(self.spec, **handler_args))
        routed = results | "Route" >> beam.ParDo(_Route()).with_outputs(DEAD, main="embeddings")
        dead = (checked[DEAD], routed[DEAD]) | "DeadLetters" >> beam.Flatten()
        return {"embeddings": routed.embeddings, "dead_letters": dead}
