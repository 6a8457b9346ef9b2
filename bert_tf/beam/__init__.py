"""bert_tf on Apache Beam: embed a corpus of any size on one machine or a cluster, losing no record.

Beam is an extra (`pip install "bert_tf[beam]"`); nothing else in bert_tf imports
this package. The pieces, each in its own module:

* `records`: what comes out, `Embedding` and `DeadLetter`, and their Parquet, TFRecord
  and JSON forms (no Beam needed to read them).
* `handler`: `BertModelHandler`, the RunInference model handler (one `BertEmbedder`
  per worker process, batches by word pieces).
* `transform`: `EmbedTexts`, `(id, text)` in, embeddings and dead letters out.
* `sources` and `sinks`: text files and JSON Lines in; Parquet, TFRecord, JSON Lines out.
* `pipeline`: `embed_corpus`, the whole run behind `bert-tf beam-embed`: refuses or
  replaces a finished output as a whole, and counts what went where.
* `runners`: runner short names (`--runner DaskRunner`) and their options; `on_dask`: the
  graph `embed_corpus` runs on Beam's DaskRunner; `local_dask`: a Dask scheduler and workers
  on this machine (tests, benchmark).

Example:
    >>> import apache_beam as beam
    >>> from bert_tf.beam import EmbedTexts, EmbedSpec
    >>> with beam.Pipeline() as p:
    ...     out = (p | beam.Create([("a", "The bank of the river.")])
    ...              | EmbedTexts(EmbedSpec("checkpoints/uncased_L-12_H-768_A-12")))
    ...     out["embeddings"] | beam.Map(lambda e: print(e.id, e.words))
"""

from __future__ import annotations

INSTALL_HINT = 'pip install "bert_tf[beam]"'


def require_beam() -> None:
    """Raises a one-line `ImportError` saying how to install Beam when it is missing."""
    try:
        import apache_beam  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as e:
        raise ImportError(f"bert_tf.beam needs Apache Beam and pyarrow ({e.name} is not installed); "
                          f"install them with: {INSTALL_HINT}") from None


from bert_tf.logs import quiet_native_logs, quiet_root_logging  # noqa: E402

quiet_native_logs("grpc")  # before Beam loads gRPC, which reads its log level then
with quiet_root_logging():  # Beam logs "apitools not found" on the root logger when it is imported
    require_beam()

    from bert_tf.beam.handler import BertModelHandler, EmbedSpec  # noqa: E402
    from bert_tf.beam.records import DeadLetter, Embedding  # noqa: E402
    from bert_tf.beam.transform import EmbedTexts  # noqa: E402

__all__ = ["BertModelHandler", "DeadLetter", "EmbedSpec", "EmbedTexts", "Embedding", "INSTALL_HINT", "require_beam"]
