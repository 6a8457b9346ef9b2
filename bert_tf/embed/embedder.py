"""`BertEmbedder`: texts in, contextual word vectors, sentence vectors and token states out.

How a batch of texts becomes vectors:

1. The in-graph tokenizer splits each text into BERT's words (with character
   offsets) and word pieces.
2. `batching.plan_calls` (the plan the SavedModel runs too) turns texts into model
   inputs (windows for long texts), groups them into calls by a budget of padded
   positions, and says which texts are complete after each call.
3. One traced graph per set of features runs `BertEncoder.token_states` (the dense
   layers see real tokens only) and combines the requested hidden layers.
4. The head (`head`, the same functions the SavedModel runs) stitches each text's
   windows, pools pieces into words and makes the sentence vector, for the texts
   the plan says are complete. Each text is reduced as soon as it is complete, so
   memory holds about one batch of token vectors however long the input. A request
   of one model call (a query) hands the encoder's output tensors straight to the head.
5. The outputs land in the columns of one `Embeddings` per chunk of texts, which
   every public method returns or views.

Steps 1 to 5 run in `runner.ChunkRunner`; this module holds the public API, the options and
the checks of the input.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from bert_tf.embed.batching import ModelCall
from bert_tf.embed.options import EmbeddingOptions, ResolvedOptions, check_choice
from bert_tf.embed.results import OUTPUTS, Embeddings, TokenStates, WordVector
from bert_tf.embed.runner import ChunkRunner
from bert_tf.embed.space import VectorSpace
from bert_tf.errors import InvalidValue
from bert_tf.streams import auto_streams, check_streams
from bert_tf.text.inputs import checked_texts, is_sized, iter_texts

if TYPE_CHECKING:
    from bert_tf.store.checkpoint_dir import CheckpointDir

logger = logging.getLogger("bert_tf")

#: How many texts are tokenized and scheduled together; bounds memory on huge inputs.
CHUNK_SIZE = 4096


class BertEmbedder:
    """Loads a Google BERT checkpoint once and embeds text with it.

    Example:
        >>> embedder = BertEmbedder.from_checkpoint()  # BERT_TF_CHECKPOINT, BERT-Base, or the offline model
        >>> words = embedder.embed_words(["The bank of the river."])[0]
        >>> [(w.text, w.start, w.end) for w in words][:2]
        [('the', 0, 3), ('bank', 4, 8)]
        >>> embedder.sentence_vectors(["The bank of the river."]).shape
        (1, 768)
    """

    def __init__(self, config, encoder, tokenizer, *, checkpoint: str | None = None,
                 fingerprint: str | None = None, max_seq_length: int | None = None, batch_size: int | None = None,
                 on_call: Callable[[ModelCall], None] | None = None, streams: int | str = "auto"):
        """Args:
            config, encoder, tokenizer: the model and its tokenizer.
            checkpoint: where they came from (recorded in exports and indexes).
            fingerprint: the checkpoint's content hash (`CheckpointDir.fingerprint`), if known.
            max_seq_length, batch_size: the defaults of every call (see `EmbeddingOptions`).
            on_call: called with a `ModelCall` after every model call, in plan order (for measurements).
            streams: model calls run at once (`bert_tf.streams`): "auto" (default) is what this
                process's thread pools are sized for (`BERT_TF_STREAMS`), else two on TensorFlow's own
                pools (one on a single core); the vectors are the same whatever the count.

        Raises:
            ValueError: `streams` is not "auto" or a positive integer.
        """
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.fingerprint = fingerprint
        self.defaults = EmbeddingOptions(max_seq_length=max_seq_length, batch_size=batch_size)
        self.defaults.resolve(config)  # a bad default fails here, not at the first call
        self.on_call = on_call
        self.streams = streams
        self._runner = ChunkRunner(config, encoder, tokenizer)
        self._resolved: dict[EmbeddingOptions, ResolvedOptions] = {}
        self._said_default_layers = False
        self._lock = threading.Lock()

    @classmethod
    def from_checkpoint(cls, path: "str | os.PathLike | CheckpointDir | None" = None, *, lower_case: bool | None = None,
                        precision: str = "float32", max_seq_length: int | None = None,
                        batch_size: int | None = None, streams: int | str = "auto") -> "BertEmbedder":
        """Builds an embedder from a Google-layout checkpoint directory.

        Args:
            path: the checkpoint directory (or a resolved `CheckpointDir`); None resolves
                `BERT_TF_CHECKPOINT`, then `checkpoints/uncased_L-12_H-768_A-12`, then the offline
                all-MiniLM-L6-v2 model.
            lower_case: True or False overrides the casing inferred from the checkpoint (a
                warning is logged when the override contradicts it); None (default) infers it.
            precision: what the encoder computes in: "float32" (default), "bfloat16",
                "float16", "int8" (dynamic int8 quantization of the dense layers, CPU only),
                "int8-litert" (int8 run by LiteRT's XNNPACK kernels: the fastest on short texts;
                converted once per checkpoint and cached), or "auto" (bfloat16 where the hardware
                computes it natively, else float32; one log line says which and why). See `bert_tf.model.precision`;
                the vectors returned are float32 whatever the precision.
            max_seq_length: the longest model input in word pieces, [CLS] and [SEP] included;
                longer texts are embedded in overlapping windows. None (default): the
                checkpoint's `max_position_embeddings` (512 for every Google checkpoint).
            batch_size: the most texts per model call; None (default) fills each call up to
                `MAX_BATCH_POSITIONS` padded positions, which is what runs fastest.
            streams: model calls run at once (see `__init__`); checked before the model is loaded.

        Raises:
            CheckpointNotFoundError, CheckpointError: no usable checkpoint (the message says why).
            TypeError: `lower_case` is not True, False or None.
            ValueError: an unknown `precision`, a bad `streams`.
        """
        from bert_tf.model.precision import resolve_precision
        from bert_tf.store.checkpoint_dir import CheckpointDir
        from bert_tf.text.vocab import check_lower_case

        lower_case = check_lower_case(lower_case)  # before the model is loaded
        check_streams(streams)
        compute_dtype = resolve_precision(precision)
        checkpoint = path if isinstance(path, CheckpointDir) else CheckpointDir.resolve(path)
        return cls.load(checkpoint, lower_case=lower_case, compute_dtype=compute_dtype,
                        max_seq_length=max_seq_length, batch_size=batch_size, streams=streams)

    @classmethod
    def load(cls, checkpoint: "CheckpointDir", *, lower_case: bool | None, compute_dtype: str,
             max_seq_length: int | None = None, batch_size: int | None = None,
             streams: int | str = "auto") -> "BertEmbedder":
        """`from_checkpoint` once its choices are resolved: `lower_case` checked (`check_lower_case`)
        and `compute_dtype` chosen (`resolve_precision`, never "auto"). `get_embedder` resolves them
        itself for its cache key and calls this, so nothing is resolved twice."""
        from bert_tf.text.tokenization import BertTokenizer

        config, encoder = checkpoint.load_encoder(compute_dtype=compute_dtype)
        tokenizer = BertTokenizer(checkpoint.vocab, lower_case=checkpoint.lower_case(lower_case))
        # Absolute: the path is recorded in indexes and corpus outputs, read again from other folders.
        return cls(config, encoder, tokenizer, checkpoint=os.path.abspath(checkpoint.path),
                   fingerprint=checkpoint.fingerprint, max_seq_length=max_seq_length, batch_size=batch_size,
                   streams=streams)

    def space(self, options: EmbeddingOptions | None = None) -> VectorSpace:
        """The `VectorSpace` of the vectors this embedder makes with `options` (default: its defaults):
        what indexes, corpus outputs and exports record, and compare with `VectorSpace.differences`.

        Raises:
            ValueError: options this model cannot serve.
        """
        resolved = self.resolve(self.options(options))
        return VectorSpace.of(resolved, fingerprint=self.fingerprint, lower_case=self.lower_case,
                              precision=self.precision, path=self.checkpoint)

    @property
    def precision(self) -> str:
        """What the encoder computes in: "float32", "bfloat16", "float16", "int8" or "int8-litert" (never
        "auto")."""
        return self.encoder.precision

    @property
    def streams(self) -> int:
        """Model calls run at once: the `streams` given, "auto" resolved (`bert_tf.streams`), at most what
        the encoder runs at once (`LiteEncoder.max_streams`: one, its interpreter takes every core)."""
        most = getattr(self.encoder, "max_streams", None)  # None: TensorFlow's encoders, any number
        return self._streams if most is None else min(self._streams, most)

    @streams.setter
    def streams(self, value: int | str) -> None:
        value = check_streams(value)
        self._streams = auto_streams() if value == "auto" else value

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def lower_case(self) -> bool:
        return self.tokenizer.lower_case

    @property
    def max_seq_length(self) -> int:
        """The longest model input of a call that does not say (resolved: 512 for Google's checkpoints)."""
        return self.resolve(self.defaults).max_seq_length

    @property
    def batch_size(self) -> int | None:
        return self.defaults.batch_size

    @property
    def default_layers(self) -> tuple[int, ...]:
        """What `layers=None` combines, as negative indices: the last four layers, or all of a smaller model."""
        return EmbeddingOptions().resolve(self.config).layers

    @property
    def traces(self) -> int:
        """How many graphs have been traced: per set of options, the encoder call and the head, whatever
        the batch shapes (a request of one call runs the same two), and where `graphs.layouts_by_size` an
        encoder call for queries too (`graphs.size_class`). With an encoder outside TensorFlow's graph the
        encoder call is its layers' combination, and a request of one call runs a graph of its own
        (`graphs.one_call_graph`)."""
        return self._runner.traces

    def options(self, options: EmbeddingOptions | None = None, **changes) -> EmbeddingOptions:
        """`options` (default: this embedder's defaults) with `changes`; None values keep the defaults'
        max_seq_length and batch_size."""
        base = self.defaults if options is None else options
        for name in ("max_seq_length", "batch_size"):
            if changes.get(name, getattr(base, name)) is None:
                changes[name] = getattr(self.defaults, name)
        return base.replace(**changes) if changes else base

    def resolve(self, options: EmbeddingOptions) -> ResolvedOptions:
        """`options` checked against this model (cached: a call per chunk costs nothing)."""
        with self._lock:
            if options not in self._resolved:
                resolved = self._resolved[options] = options.resolve(self.config)
                if options.layers is None and not self._said_default_layers and self.config.num_hidden_layers < 4:
                    self._said_default_layers = True  # once per embedder: the CLI resolves per chunk
                    logger.info("this model has %d layer(s), fewer than the %d the default combines; using all "
                                "of them (layers=%s)", self.config.num_hidden_layers, 4,
                                ",".join(map(str, resolved.layers)))
            return self._resolved[options]

    # ------------------------------------------------------------------ public API

    def embed(self, sentences: Iterable[str], output_value: str | Sequence[str] = ("word_vectors", "sentence_vectors"),
              options: EmbeddingOptions | None = None, *, progress: bool | None = None,
              **option_values) -> Embeddings:
        """The one entry point: texts in, the outputs named by `output_value` out, as columns.

        Like sentence-transformers' `encode(output_value=...)`: "word_vectors" ([W, D], one row
        per word occurrence), "sentence_vectors" ([T, H]) and/or "token_states" ([P + 2T, L + 1,
        H]), from ONE pass of the model; what is not asked for is not computed. Options: an
        `EmbeddingOptions`, or its fields as keywords. The other methods are views of this one.

        Raises:
            TypeError: `sentences` is not a list of strings (names the bad index).
            ValueError: a bad option or output name.
        """
        texts = checked_texts(sentences)
        if not texts:
            resolved, kinds = self._request(output_value, options, option_values)
            return self._run(self._runner.tokenize([]), resolved, kinds, progress)
        # Planned chunk by chunk, as every other method plans: the same texts give the same calls.
        return Embeddings.concat(list(self.iter_batches(texts, output_value, options, progress=progress,
                                                        **option_values)))

    def iter_batches(self, sentences: Iterable[str], output_value: str | Sequence[str] = ("word_vectors",
                     "sentence_vectors"), options: EmbeddingOptions | None = None, *, progress: bool | None = None,
                     chunk_size: int = CHUNK_SIZE, **option_values) -> Iterator[Embeddings]:
        """`embed`, `chunk_size` texts at a time (input order): memory stays bounded on inputs of any
        length. A list or tuple is checked whole before anything is embedded; from a stream, an
        element that is not a str fails as soon as it is read, before its chunk is embedded."""
        resolved, kinds = self._request(output_value, options, option_values)
        for tokens in self._chunks(sentences, chunk_size):
            yield self._run(tokens, resolved, kinds, progress)

    def embed_words(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                    combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                    batch_size: int | None = None, max_seq_length: int | None = None,
                    progress: bool | None = None) -> list[list[WordVector]]:
        """Every word occurrence of every text, in order, with its contextual vector.

        A word's vector combines the chosen hidden layers of each of its word pieces
        (`combine`), then pools the pieces (`subword_pooling`). Options as in
        `EmbeddingOptions`; `progress` shows a progress bar on stderr (None: for more than
        a few batches on a terminal).

        Returns:
            One list of `WordVector` per input text (empty for an empty text).

        Raises:
            TypeError: `sentences` is not a list of strings (names the bad index); raised
                before any text is embedded.
            ValueError: a bad option (names the allowed values).
        """
        return list(self.iter_words(checked_texts(sentences), layers=layers, combine=combine,
                                    subword_pooling=subword_pooling, dim=dim, batch_size=batch_size,
                                    max_seq_length=max_seq_length, progress=progress))

    def iter_words(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                   combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                   batch_size: int | None = None, max_seq_length: int | None = None,
                   progress: bool | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[list[WordVector]]:
        """Like `embed_words`, but yields one text's words at a time, in input order, `chunk_size`
        texts at a time: memory stays bounded on inputs of any length."""
        for batch in self.iter_batches(sentences, "word_vectors", progress=progress, chunk_size=chunk_size,
                                       layers=layers, combine=combine, subword_pooling=subword_pooling, dim=dim,
                                       batch_size=batch_size, max_seq_length=max_seq_length):
            for t in range(len(batch)):
                yield batch.words_of(t)

    def iter_embed(self, sentences: Iterable[str], options: EmbeddingOptions | None = None, *,
                   progress: bool | None = None, chunk_size: int = CHUNK_SIZE,
                   **option_values) -> Iterator[tuple[list[WordVector], np.ndarray | None]]:
        """Word vectors and the sentence vector of each text from ONE pass of the model.

        Yields `(words, sentence_vector)` per text in input order (`sentence_vector` is None
        when `sentence_strategy` is None). Options: an `EmbeddingOptions`, or its fields as
        keywords. A view of `iter_batches`, for code that wants one text at a time.
        """
        options = self.options(options, **option_values)
        outputs = ("word_vectors",) + (("sentence_vectors",) if options.sentence_strategy else ())
        for batch in self.iter_batches(sentences, outputs, options, progress=progress, chunk_size=chunk_size):
            for t in range(len(batch)):
                yield batch.words_of(t), None if batch.sentence_vectors is None else batch.sentence_vectors[t]

    def sentence_vectors(self, sentences: Iterable[str], *, sentence_strategy: str = "mean",
                         sentence_layer: int = -2, batch_size: int | None = None,
                         max_seq_length: int | None = None, progress: bool | None = None,
                         **deprecated) -> np.ndarray:
        """One vector per text, `[n_texts, hidden]` float32.

        Strategies:
            * "mean": the mean over the text's tokens of hidden layer `sentence_layer`
              (default -2, the second-to-last layer, as in the research notebook), `[CLS]`
              and `[SEP]` included, padding excluded.
            * "max": the element-wise maximum over the same tokens.
            * "cls": the `[CLS]` token's vector at `sentence_layer`.
            * "pooled": BERT's pooler output (tanh(dense([CLS]) of the last layer)).

        Long texts are windowed as in `embed_words`; "cls" and "pooled" then come from
        the first window. `strategy=` and `layer=`, the names of earlier versions, still work.
        """
        sentence_strategy, sentence_layer = _renamed(deprecated, sentence_strategy, sentence_layer)
        out = [batch.sentence_vectors for batch in self.iter_batches(
            checked_texts(sentences), "sentence_vectors", progress=progress, sentence_strategy=sentence_strategy,
            sentence_layer=sentence_layer, batch_size=batch_size, max_seq_length=max_seq_length)]
        return np.concatenate(out) if out else np.zeros((0, self.hidden_size), np.float32)

    def token_states(self, sentences: Iterable[str], *, batch_size: int | None = None,
                     max_seq_length: int | None = None) -> list[TokenStates]:
        """All hidden states of every token, `[num_hidden_layers + 1, n_tokens, hidden]` per text."""
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        return [batch.token_states_of(t, cls_id, sep_id, self._runner.vocab)
                for batch in self.iter_batches(checked_texts(sentences), "token_states", progress=False,
                                               batch_size=batch_size, max_seq_length=max_seq_length)
                for t in range(len(batch))]

    def model_inputs(self, sentences: Iterable[str], options: EmbeddingOptions | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The `(ids, mask)` arrays of every model call these texts would make, in order.

        Exactly what the embedder feeds its encoder (for measurements and other engines).
        """
        resolved = self.resolve(self.options(options))
        calls = []
        for tokens in self._chunks(checked_texts(sentences), CHUNK_SIZE):
            plan = self._runner.plan(tokens, resolved)
            calls.extend(self._runner.call_arrays(plan, c, tokens) for c in range(len(plan["call_padded"])))
        return calls

    # ------------------------------------------------------------------ machinery

    def _chunks(self, sentences, chunk_size: int) -> Iterator[Embeddings]:
        """Checks and tokenizes the input `chunk_size` texts at a time."""
        texts = checked_texts(sentences) if is_sized(sentences) else iter_texts(sentences)
        buffer: list[str] = []
        for text in texts:
            buffer.append(text)
            if len(buffer) >= chunk_size:
                yield self._runner.tokenize(buffer)
                buffer = []
        if buffer:
            yield self._runner.tokenize(buffer)

    def _request(self, output_value, options: EmbeddingOptions | None, option_values: dict):
        """The resolved options and the head's kinds for `output_value`, checked before anything runs."""
        outputs = (output_value,) if isinstance(output_value, str) else tuple(output_value)
        for name in outputs:
            check_choice("output_value", name, OUTPUTS)
        options = self.options(options, **option_values)
        if "sentence_vectors" in outputs and options.sentence_strategy is None:
            raise InvalidValue("output_value 'sentence_vectors' needs a sentence_strategy (one of mean, cls, "
                               "pooled, max); got None")
        return self.resolve(options), tuple(kind for kind, name in _KINDS if name in outputs)

    def _run(self, tokens: Embeddings, resolved: ResolvedOptions, kinds: tuple[str, ...],
             progress: bool | None) -> Embeddings:
        return self._runner.run(tokens, resolved, kinds, progress, streams=self.streams, on_call=self.on_call)


#: The head's output kinds and the `output_value` names they answer.
_KINDS = (("words", "word_vectors"), ("sentence", "sentence_vectors"), ("states", "token_states"))


def _renamed(deprecated: dict, strategy: str, layer: int) -> tuple[str, int]:
    """`sentence_vectors(strategy=, layer=)`, the names of bert_tf 0.1, with a DeprecationWarning."""
    import warnings

    unknown = set(deprecated) - {"strategy", "layer"}
    if unknown:
        raise TypeError(f"sentence_vectors() got an unexpected keyword argument {sorted(unknown)[0]!r}")
    if deprecated:
        warnings.warn("sentence_vectors(strategy=, layer=) are now sentence_strategy= and sentence_layer=, "
                      "as everywhere else", DeprecationWarning, stacklevel=3)
    return deprecated.get("strategy", strategy), deprecated.get("layer", layer)
