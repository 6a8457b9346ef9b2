"""`BertEmbedder`: texts in, contextual word vectors, sentence vectors and token states out.

How a batch of texts becomes vectors:

1. The in-graph tokenizer splits each text into BERT's words (with character
   offsets) and word pieces.
2. `batching` turns texts into model inputs (windows for long texts) and groups
   them into calls by a budget of padded positions.
3. One traced graph per set of features runs `BertEncoder.token_states` (the dense
   layers see real tokens only) and combines the requested hidden layers.
4. The head (`head`, the same functions the SavedModel runs) stitches each text's
   windows, pools pieces into words and makes the sentence vector, for the texts
   whose last window has come back. Each text is reduced as soon as it is
   complete, so memory holds about one batch of token vectors however long the input.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np

from bert_tf.embed.batching import MAX_BATCH_POSITIONS, ModelCall, batch_arrays, plan_batches, segments_of
from bert_tf.embed.graphs import encode_graph, head_graph
from bert_tf.embed.options import EmbeddingOptions, ResolvedOptions
from bert_tf.embed.results import TokenStates, WordVector
from bert_tf.embed.space import VectorSpace
from bert_tf.runtime import tf
from bert_tf.text.inputs import checked_texts, is_sized, iter_texts

if TYPE_CHECKING:
    from bert_tf.store.checkpoint_dir import CheckpointDir

logger = logging.getLogger("bert_tf")

#: How many texts are tokenized and scheduled together; bounds memory on huge inputs.
CHUNK_SIZE = 4096


@dataclasses.dataclass
class _Tokenized:
    """The tokenizer's output for one text, as numpy."""

    words: list[str]
    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray  # [n_pieces] int32, no [CLS]/[SEP]
    pieces_per_word: np.ndarray  # [n_words]


@dataclasses.dataclass(frozen=True)
class _Result:
    words: np.ndarray | None  # [n_words, vector_size]
    sentence: np.ndarray | None  # [hidden]
    states: np.ndarray | None  # [n + 2, layers + 1, hidden]


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
                 on_call: Callable[[ModelCall], None] | None = None):
        """Args:
            config, encoder, tokenizer: the model and its tokenizer.
            checkpoint: where they came from (recorded in exports and indexes).
            fingerprint: the checkpoint's content hash (`CheckpointDir.fingerprint`), if known.
            max_seq_length, batch_size: the defaults of every call (see `EmbeddingOptions`).
            on_call: called with a `ModelCall` after every model call (for measurements).
        """
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.fingerprint = fingerprint
        self.defaults = EmbeddingOptions(max_seq_length=max_seq_length, batch_size=batch_size)
        self.defaults.resolve(config)  # a bad default fails here, not at the first call
        self.on_call = on_call
        self._graphs: dict[tuple, tf.types.experimental.GenericFunction] = {}
        self._resolved: dict[EmbeddingOptions, ResolvedOptions] = {}
        self._said_default_layers = False
        self._lock = threading.Lock()
        self._vocab = np.array(list(tokenizer.vocab), dtype=object)  # id -> piece, vectorised lookups

    @classmethod
    def from_checkpoint(cls, path: "str | os.PathLike | CheckpointDir | None" = None, *, lower_case: bool | None = None,
                        precision: str = "float32", max_seq_length: int | None = None,
                        batch_size: int | None = None) -> "BertEmbedder":
        """Builds an embedder from a Google-layout checkpoint directory.

        Args:
            path: the checkpoint directory (or a resolved `CheckpointDir`); None resolves
                `BERT_TF_CHECKPOINT`, then `checkpoints/uncased_L-12_H-768_A-12`, then the offline
                all-MiniLM-L6-v2 model.
            lower_case: True or False overrides the casing inferred from the checkpoint (a
                warning is logged when the override contradicts it); None (default) infers it.
            precision: what the encoder computes in: "float32" (default), "bfloat16",
                "float16", "int8" (dynamic int8 quantization of the dense layers, CPU only), or
                "auto" (bfloat16 where the hardware computes it natively, else float32; one log
                line says which and why). See `bert_tf.model.precision`;
                the vectors returned are float32 whatever the precision.
            max_seq_length: the longest model input in word pieces, [CLS] and [SEP] included;
                longer texts are embedded in overlapping windows. None (default): the
                checkpoint's `max_position_embeddings` (512 for every Google checkpoint).
            batch_size: the most texts per model call; None (default) fills each call up to
                `MAX_BATCH_POSITIONS` padded positions, which is what runs fastest.

        Raises:
            CheckpointNotFoundError, CheckpointError: no usable checkpoint (the message says why).
            TypeError: `lower_case` is not True, False or None.
            ValueError: an unknown `precision`.
        """
        from bert_tf.model.precision import resolve_precision
        from bert_tf.store.checkpoint_dir import CheckpointDir
        from bert_tf.text.vocab import check_lower_case

        lower_case = check_lower_case(lower_case)  # before the model is loaded
        compute_dtype = resolve_precision(precision)
        checkpoint = path if isinstance(path, CheckpointDir) else CheckpointDir.resolve(path)
        return cls.load(checkpoint, lower_case=lower_case, compute_dtype=compute_dtype,
                        max_seq_length=max_seq_length, batch_size=batch_size)

    @classmethod
    def load(cls, checkpoint: "CheckpointDir", *, lower_case: bool | None, compute_dtype: str,
             max_seq_length: int | None = None, batch_size: int | None = None) -> "BertEmbedder":
        """`from_checkpoint` once its choices are resolved: `lower_case` checked (`check_lower_case`)
        and `compute_dtype` chosen (`resolve_precision`, never "auto"). `get_embedder` resolves them
        itself for its cache key and calls this, so nothing is resolved twice."""
        from bert_tf.text.tokenization import BertTokenizer

        config, encoder = checkpoint.load_encoder(compute_dtype=compute_dtype)
        tokenizer = BertTokenizer(checkpoint.vocab, lower_case=checkpoint.lower_case(lower_case))
        # Absolute: the path is recorded in indexes and corpus outputs, read again from other folders.
        return cls(config, encoder, tokenizer, checkpoint=os.path.abspath(checkpoint.path),
                   fingerprint=checkpoint.fingerprint, max_seq_length=max_seq_length, batch_size=batch_size)

    def space(self, options: EmbeddingOptions | None = None) -> VectorSpace:
        """The `VectorSpace` of the vectors this embedder makes with `options` (default: its defaults):
        what indexes, corpus outputs and exports record, and compare with `VectorSpace.differences`.

        Raises:
            ValueError: options this model cannot serve.
        """
        resolved = self.resolve(self.options(options))
        return VectorSpace.of(resolved, fingerprint=self.fingerprint, lower_case=self.lower_case,
                              precision=self.precision, path=self.checkpoint, batch_positions=MAX_BATCH_POSITIONS)

    @property
    def precision(self) -> str:
        """What the encoder computes in: "float32", "bfloat16", "float16" or "int8" (never "auto")."""
        return self.encoder.precision

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
        """How many graphs have been traced: one per set of options, whatever the batch shapes."""
        return sum(g.experimental_get_tracing_count() for g in self._graphs.values())

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
        options = self.options(layers=layers, combine=combine, subword_pooling=subword_pooling, dim=dim,
                               sentence_strategy=None, batch_size=batch_size, max_seq_length=max_seq_length)
        return [words for words, _ in self.iter_embed(checked_texts(sentences), options, progress=progress)]

    def iter_words(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                   combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                   batch_size: int | None = None, max_seq_length: int | None = None,
                   progress: bool | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[list[WordVector]]:
        """Like `embed_words`, but yields one text's words at a time, in input order, `chunk_size`
        texts at a time: memory stays bounded on inputs of any length."""
        options = self.options(layers=layers, combine=combine, subword_pooling=subword_pooling, dim=dim,
                               sentence_strategy=None, batch_size=batch_size, max_seq_length=max_seq_length)
        for words, _ in self.iter_embed(sentences, options, progress=progress, chunk_size=chunk_size):
            yield words

    def iter_embed(self, sentences: Iterable[str], options: EmbeddingOptions | None = None, *,
                   progress: bool | None = None, chunk_size: int = CHUNK_SIZE,
                   **option_values) -> Iterator[tuple[list[WordVector], np.ndarray | None]]:
        """Word vectors and the sentence vector of each text from ONE pass of the model.

        Yields `(words, sentence_vector)` per text in input order (`sentence_vector` is None
        when `sentence_strategy` is None). Options: an `EmbeddingOptions`, or its fields as
        keywords. A list or tuple is checked whole before anything is embedded; from a
        stream, an element that is not a str fails as soon as it is read, before its chunk
        is embedded.
        """
        options = self.options(options, **option_values)
        resolved = self.resolve(options)
        kinds = ("words",) + (("sentence",) if options.sentence_strategy else ())
        for tokenized in self._chunks(sentences, chunk_size):
            for t, result in enumerate(self._run(tokenized, resolved, kinds, progress)):
                yield self._word_vectors(tokenized[t], result.words), result.sentence

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
        options = self.options(sentence_strategy=sentence_strategy, sentence_layer=sentence_layer,
                               batch_size=batch_size, max_seq_length=max_seq_length)
        resolved = self.resolve(options)
        out = [r.sentence for tokenized in self._chunks(checked_texts(sentences), CHUNK_SIZE)
               for r in self._run(tokenized, resolved, ("sentence",), progress)]
        return np.stack(out) if out else np.zeros((0, self.hidden_size), np.float32)

    def token_states(self, sentences: Iterable[str], *, batch_size: int | None = None,
                     max_seq_length: int | None = None) -> list[TokenStates]:
        """All hidden states of every token, `[num_hidden_layers + 1, n_tokens, hidden]` per text."""
        resolved = self.resolve(self.options(batch_size=batch_size, max_seq_length=max_seq_length))
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        out = []
        for tokenized in self._chunks(checked_texts(sentences), CHUNK_SIZE):
            for tok, result in zip(tokenized, self._run(tokenized, resolved, ("states",), False)):
                ids = np.concatenate([[cls_id], tok.ids, [sep_id]]).astype(np.int32)
                word_index = np.concatenate([[-1], np.repeat(np.arange(len(tok.words)), tok.pieces_per_word),
                                             [-1]]).astype(np.int32)
                out.append(TokenStates(tuple(self._vocab[ids]), ids, word_index,
                                       np.ascontiguousarray(result.states.transpose(1, 0, 2))))
        return out

    def model_inputs(self, sentences: Iterable[str], options: EmbeddingOptions | None = None
                     ) -> list[tuple[np.ndarray, np.ndarray]]:
        """The `(ids, mask)` arrays of every model call these texts would make, in order.

        Exactly what the embedder feeds its encoder (for measurements and other engines).
        """
        resolved = self.resolve(self.options(options))
        calls = []
        for tokenized in self._chunks(checked_texts(sentences), CHUNK_SIZE):
            segments, batches = self._plan(tokenized, resolved)
            calls.extend(batch_arrays([segments[k] for k in b], resolved.max_seq_length) for b in batches)
        return calls

    # ------------------------------------------------------------------ machinery

    def _chunks(self, sentences, chunk_size: int) -> Iterator[list[_Tokenized]]:
        """Checks and tokenizes the input `chunk_size` texts at a time."""
        texts = checked_texts(sentences) if is_sized(sentences) else iter_texts(sentences)
        buffer: list[str] = []
        for text in texts:
            buffer.append(text)
            if len(buffer) >= chunk_size:
                yield self._tokenize(buffer)
                buffer = []
        if buffer:
            yield self._tokenize(buffer)

    def _tokenize(self, texts: list[str]) -> list[_Tokenized]:
        out = self.tokenizer.tokenize(tf.constant([t.encode("utf-8") for t in texts]))
        pieces = out["pieces"]
        piece_row_lengths = pieces.values.row_lengths().numpy()  # pieces per word, all texts
        flat_ids = pieces.flat_values.numpy().astype(np.int32)
        words_per_text = pieces.row_lengths().numpy()
        words = out["words"].flat_values.numpy()
        starts = out["starts"].flat_values.numpy()
        ends = out["ends"].flat_values.numpy()
        result = []
        w = p = 0
        for n_words in words_per_text:
            counts = piece_row_lengths[w:w + n_words]
            n_pieces = int(counts.sum())
            result.append(_Tokenized([x.decode("utf-8") for x in words[w:w + n_words]],
                                     starts[w:w + n_words], ends[w:w + n_words],
                                     flat_ids[p:p + n_pieces], counts))
            w += n_words
            p += n_pieces
        return result

    def _plan(self, tokenized: list[_Tokenized], resolved: ResolvedOptions):
        segments = segments_of([tok.ids for tok in tokenized], resolved.span, self.tokenizer.cls_id,
                               self.tokenizer.sep_id)
        batches = plan_batches([len(s.ids) for s in segments], resolved.options.batch_size,
                               resolved.max_seq_length)
        return segments, batches

    def _run(self, tokenized: list[_Tokenized], resolved: ResolvedOptions, kinds: tuple[str, ...],
             progress: bool | None) -> list[_Result]:
        """Runs the model over all texts; each text goes through the head once its last window is back.

        A batch holds consecutive segments of the length-sorted order, and a text's windows are
        adjacent there: only the last text of a batch can be incomplete (its windows continue in
        the next batch). Its rows are kept (copied, so no batch stays pinned) until they are all in.
        """
        segments, batches = self._plan(tokenized, resolved)
        encode, reduce = self._graph(resolved, kinds)
        span = tf.constant(resolved.span, tf.int64)
        results: list[_Result | None] = [None] * len(tokenized)
        carry: list[tuple[list[np.ndarray], np.ndarray]] = []  # rows of an incomplete text: (features, pooled)
        for batch in _progress(batches, progress, len(tokenized)):
            started = time.perf_counter()
            rows = [segments[k] for k in batch]
            ids, mask = batch_arrays(rows, resolved.max_seq_length)
            *features, pooled = (x.numpy() for x in encode(tf.constant(ids), tf.constant(mask)))
            ends = np.cumsum(mask.sum(axis=1))
            last = rows[-1]
            complete_rows = len(rows)
            if last.window != last.num_windows - 1:  # the trailing text continues in the next batch
                complete_rows = next(r for r in range(len(rows)) if rows[r].text_index == last.text_index)
            cut = int(ends[complete_rows - 1]) if complete_rows else 0
            head_features = [f[:cut] for f in features]
            head_pooled = pooled[:complete_rows]
            if carry and complete_rows:  # the batch's first text began in earlier batches
                head_features = [np.concatenate([*(c[0][i] for c in carry), f]) for i, f in enumerate(head_features)]
                head_pooled = np.concatenate([*(c[1] for c in carry), head_pooled])
                carry = []
            if complete_rows < len(rows):
                carry.append(([f[cut:].copy() for f in features], pooled[complete_rows:].copy()))
            texts = list(dict.fromkeys(rows[r].text_index for r in range(complete_rows)))  # in feature order
            if texts:
                n = np.array([len(tokenized[t].ids) for t in texts], np.int64)
                ppw = np.concatenate([tokenized[t].pieces_per_word for t in texts]).astype(np.int64)
                out = reduce(*map(tf.constant, head_features), tf.constant(head_pooled), tf.constant(n),
                             tf.constant(ppw), span)
                self._split(out, texts, tokenized, results)
            if self.on_call is not None:
                self.on_call(ModelCall(len(rows), ids.shape[1], int(ends[-1]), time.perf_counter() - started))
        return results

    @staticmethod
    def _split(out: dict, texts: list[int], tokenized: list[_Tokenized], results: list) -> None:
        """The head's flat outputs cut per text, each a copy of its own (no view of a batch)."""
        words = out["words"].numpy() if "words" in out else None
        sentence = out["sentence"].numpy() if "sentence" in out else None
        states = out["states"].numpy() if "states" in out else None
        w = s = 0
        for i, t in enumerate(texts):
            n_words, n_rows = len(tokenized[t].words), len(tokenized[t].ids) + 2
            results[t] = _Result(None if words is None else words[w:w + n_words].copy(),
                                 None if sentence is None else sentence[i].copy(),
                                 None if states is None else states[s:s + n_rows].copy())
            w += n_words
            s += n_rows

    def _graph(self, resolved: ResolvedOptions, kinds: tuple[str, ...]):
        """The traced encoder call and head for these options: one pair per options, any batch shape."""
        options = resolved.options
        specs = []
        if "words" in kinds:
            specs.append((resolved.hidden_states, options.combine))
        if "sentence" in kinds and options.sentence_strategy != "pooled":
            specs.append(((resolved.sentence_state,), "sum"))
        if "states" in kinds:
            specs.append((tuple(range(self.config.num_hidden_layers + 1)), "stack"))
        key = (tuple(specs), kinds, options.subword_pooling, options.sentence_strategy, options.dim)
        with self._lock:
            if key not in self._graphs:
                self._graphs[key] = encode_graph(self.encoder, specs)
                self._graphs[key + ("head",)] = head_graph(self.config, specs, kinds, options)
            return self._graphs[key], self._graphs[key + ("head",)]

    def _word_vectors(self, tok: _Tokenized, vectors: np.ndarray) -> list[WordVector]:
        pieces = self._vocab[tok.ids]
        bounds = np.concatenate([[0], np.cumsum(tok.pieces_per_word)])
        return [WordVector(text, int(s), int(e), tuple(pieces[bounds[k]:bounds[k + 1]]), vectors[k])
                for k, (text, s, e) in enumerate(zip(tok.words, tok.starts, tok.ends))]


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


def _progress(batches, progress, total_texts):
    show = progress if progress is not None else (len(batches) > 4 and sys.stderr.isatty())
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"embedding {total_texts} texts", unit="batch", file=sys.stderr, leave=False)
