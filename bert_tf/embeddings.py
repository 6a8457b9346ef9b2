"""Contextual word and sentence embeddings: `BertEmbedder` and `get_bert_embeddings`.

How a batch of text becomes vectors:

1. The in-graph tokenizer splits each text into BERT's words (with character
   offsets) and word pieces.
2. Each text becomes one model input `[CLS] pieces [SEP]`; a text longer than
   `max_seq_length` becomes overlapping windows, and every piece takes its
   vector from the window where it has the most context on both sides (the
   rule of Google's `run_squad.py`), so nothing is truncated.
3. Inputs are sorted by length and batched by a budget of padded positions
   (rows x length): many short texts share one call, long ones go a few at a
   time, so every call is big enough for the matrix multiplications to run at
   full speed and small enough to bound memory. Each batch is padded only to
   its own longest member (rounded up to a multiple of 8). One traced graph,
   with `[None, None]` shapes, serves every batch.
4. The graph combines the requested hidden layers and returns only the real
   (unpadded) token vectors. Each text is reduced (word pieces pooled into
   words, the sentence vector) as soon as its batch, or the last of its
   windows, comes back, so only one batch of token vectors is held at a time;
   results come back in input order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from typing import Iterable, Iterator, Sequence

import numpy as np

from bert_tf._tf import tf
from bert_tf.options import (COMBINE_CHOICES, DEFAULT_LAYERS, SENTENCE_STRATEGIES, SUBWORD_POOLING_CHOICES,
                             check_choice)

logger = logging.getLogger("bert_tf")


#: Pad each batch to a multiple of this many tokens (cheap alignment, few distinct shapes).
PAD_MULTIPLE = 8
#: How many texts are tokenized and scheduled together; bounds memory on huge inputs.
CHUNK_SIZE = 4096
#: The padded positions (rows x padded length) one model call may hold. Short texts go many
#: to a call (256 texts of 8 pieces), long ones few (4 windows of 512), so the dense layers
#: always multiply matrices of a thousand rows or more, where TensorFlow's CPU matmul runs
#: near its peak (at 256 rows it runs at half speed), and a call's activations stay bounded
#: whatever the texts: attention scores grow with rows x length^2, and 32 windows of 512
#: pieces would need about 1 GB. On BERT-Base, 2048 ran 0.4-5.2% faster than 1024 (median
#: 3.7%, four passes alternating the two on the same texts) and holds about 60 MB more
#: (bench/README.md), which the tokenizer's smaller footprint pays for (`_text_ops`).
MAX_BATCH_POSITIONS = 2048


def _padded_length(n: int, limit: int) -> int:
    return min(-(-n // PAD_MULTIPLE) * PAD_MULTIPLE, limit)


def _plan_batches(lengths: Sequence[int], batch_size: int | None, max_seq_length: int,
                  max_positions: int | None = None) -> list[list[int]]:
    """Groups segment indices, shortest first, into model calls.

    Rows are padded to the longest of their call, rounded up to `PAD_MULTIPLE`. A call
    holds at most `max_positions` padded positions (default `MAX_BATCH_POSITIONS`; a
    single segment longer than that runs alone) and, when `batch_size` is given, at
    most `batch_size` rows.
    """
    max_positions = MAX_BATCH_POSITIONS if max_positions is None else max_positions
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    batches: list[list[int]] = []
    current: list[int] = []
    for k in order:
        seq = _padded_length(lengths[k], max_seq_length)  # the longest so far: sorted
        full = batch_size is not None and len(current) == batch_size
        if current and (full or (len(current) + 1) * seq > max_positions):
            batches.append(current)
            current = []
        current.append(k)
    if current:
        batches.append(current)
    return batches


def _batch_arrays(segments: Sequence["_Segment"], max_seq_length: int) -> tuple[np.ndarray, np.ndarray]:
    """int32 `ids` and `mask` `[rows, padded length]` for one model call, shortest segment first."""
    seq = _padded_length(len(segments[-1].ids), max_seq_length)
    ids = np.zeros((len(segments), seq), np.int32)
    mask = np.zeros((len(segments), seq), np.int32)
    for row, segment in enumerate(segments):
        n = len(segment.ids)
        ids[row, :n] = segment.ids
        mask[row, :n] = 1
    return ids, mask


@dataclasses.dataclass(frozen=True)
class WordVector:
    """One word occurrence: its text as the model sees it, where it is, its pieces and its vector.

    `start`/`end` are character (code point) offsets into the original string:
    `sentence[start:end]` is the word as written.
    """

    text: str
    start: int
    end: int
    pieces: tuple[str, ...]
    vector: np.ndarray


@dataclasses.dataclass(frozen=True)
class TokenStates:
    """Every hidden state of every token of one text.

    `states` is `[num_hidden_layers + 1, n_tokens, hidden]`: index 0 is the
    embedding output, index -1 the last layer; tokens are `[CLS]`, the word
    pieces, `[SEP]`. `word_index[t]` is the word a token belongs to (-1 for
    `[CLS]`/`[SEP]`).
    """

    pieces: tuple[str, ...]
    ids: np.ndarray
    word_index: np.ndarray
    states: np.ndarray


def _check_vocab(vocab: Sequence[str], config, directory) -> None:
    from bert_tf.checkpoint import CheckpointError

    if len(vocab) != config.vocab_size:
        raise CheckpointError(f"{directory}: vocab.txt has {len(vocab)} entries but bert_config.json "
                              f"says vocab_size {config.vocab_size}; do they belong to the same checkpoint?")
    seen, duplicates = set(), []
    for token in vocab:
        if token in seen:
            duplicates.append(token)
        seen.add(token)
    if duplicates:
        raise CheckpointError(f"{directory}: vocab.txt lists {len(duplicates)} token(s) twice "
                              f"({', '.join(map(repr, duplicates[:5]))}); word piece ids would be ambiguous")
    missing = [t for t in ("[CLS]", "[SEP]", "[UNK]", "[PAD]") if t not in seen]
    if missing:
        raise CheckpointError(f"{directory}: vocab.txt lacks the special token(s) {', '.join(missing)}")


@dataclasses.dataclass
class _Tokenized:
    """The tokenizer's output for one text, as numpy."""

    words: list[str]
    starts: np.ndarray
    ends: np.ndarray
    ids: np.ndarray  # [n_pieces] int32, no [CLS]/[SEP]
    pieces_per_word: np.ndarray  # [n_words]


@dataclasses.dataclass
class _Segment:
    """One model input: a text, or one window of a long text."""

    text_index: int
    window: int
    piece_start: int  # first piece of the text in this window
    ids: np.ndarray  # [CLS] + pieces + [SEP]


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
                 max_seq_length: int | None = None, batch_size: int | None = None):
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.checkpoint = checkpoint
        self.max_seq_length = self._check_max_seq_length(max_seq_length)
        self.batch_size = self._check_batch_size(batch_size)
        self._forwards: dict[tuple, tf.types.experimental.GenericFunction] = {}
        self._lock = threading.Lock()
        self._said_default_layers = False
        self._vocab = np.array(list(tokenizer.vocab), dtype=object)  # id -> piece, vectorised lookups

    # ------------------------------------------------------------------ construction

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike | None = None, *, lower_case: bool | None = None,
                        max_seq_length: int | None = None, batch_size: int | None = None) -> "BertEmbedder":
        """Builds an embedder from a Google-layout checkpoint directory.

        Args:
            path: the checkpoint directory; None resolves `BERT_TF_CHECKPOINT`, then
                `checkpoints/uncased_L-12_H-768_A-12`, then the offline all-MiniLM-L6-v2 model.
            lower_case: True or False overrides the casing inferred from the checkpoint (a
                warning is logged when the override contradicts it); None (default) infers it.
            max_seq_length: the longest model input in word pieces, including [CLS] and [SEP];
                longer texts are embedded in overlapping windows. None (default) means the
                checkpoint's `max_position_embeddings` (512 for every Google checkpoint).
            batch_size: the most texts per model call; None (default) fills each call up to
                `MAX_BATCH_POSITIONS` padded positions, which is what runs fastest.

        Raises:
            CheckpointNotFoundError, CheckpointError: no usable checkpoint (the message says why).
            TypeError: `lower_case` is not True, False or None.
        """
        from bert_tf.checkpoint import load_encoder, resolve_checkpoint_prefix
        from bert_tf.resolve import resolve_checkpoint
        from bert_tf.tokenization import BertTokenizer, check_lower_case, load_vocab, resolve_lower_case

        lower_case = check_lower_case(lower_case)  # before the model is loaded
        directory = resolve_checkpoint(path)
        directory, _ = resolve_checkpoint_prefix(directory)
        config, encoder = load_encoder(directory)
        vocab = load_vocab(os.path.join(directory, "vocab.txt"))
        _check_vocab(vocab, config, directory)
        name = os.path.basename(os.path.normpath(os.fspath(directory)))
        casing = resolve_lower_case(vocab, name, lower_case)
        tokenizer = BertTokenizer(vocab, lower_case=casing)
        return cls(config, encoder, tokenizer, checkpoint=str(directory),
                   max_seq_length=max_seq_length, batch_size=batch_size)

    def _check_max_seq_length(self, value) -> int:
        limit = self.config.max_position_embeddings
        if value is None:  # the checkpoint's own limit: 512 for every Google checkpoint
            return min(limit, 512)
        if not isinstance(value, int) or isinstance(value, bool) or not 8 <= value <= limit:
            raise ValueError(f"max_seq_length must be an integer from 8 to {limit} "
                             f"(this checkpoint's max_position_embeddings); got {value!r}")
        return value

    @staticmethod
    def _check_batch_size(value) -> int | None:
        if value is None:  # sized by padded positions only
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"batch_size must be a positive integer or None; got {value!r}")
        return value

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def lower_case(self) -> bool:
        return self.tokenizer.lower_case

    @property
    def default_layers(self) -> tuple[int, ...]:
        """What `layers=None` combines: the last four layers, or all of a model with fewer.

        The embedding output (index 0) is never part of it: the default means the
        encoder's own layers, as in the BERT paper's feature-based experiments.
        """
        n = self.config.num_hidden_layers
        return DEFAULT_LAYERS if n >= len(DEFAULT_LAYERS) else tuple(range(-n, 0))

    # ------------------------------------------------------------------ public API

    def embed_words(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                    combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                    batch_size: int | None = None, max_seq_length: int | None = None,
                    progress: bool | None = None) -> list[list[WordVector]]:
        """Every word occurrence of every text, in order, with its contextual vector.

        A word's vector combines the chosen hidden layers of each of its word pieces
        (`combine`), then pools the pieces (`subword_pooling`).

        Args:
            sentences: a list (or any iterable) of strings.
            layers: hidden-state indices; 0 is the embedding output, 1..L the layers,
                negative counts from the last layer (-1). None (default) is the last four
                layers, (-4, -3, -2, -1), or every layer of a model with fewer than four
                (`default_layers`).
            combine: "sum", "mean" or "concat" over `layers`.
            subword_pooling: "mean", "first" or "last" piece of each word.
            dim: keep only the first `dim` components (None keeps all).
            batch_size, max_seq_length: override the embedder's defaults for this call
                (`batch_size`: the most texts per model call).
            progress: show a progress bar on stderr; None shows one for more than a few batches.

        Returns:
            One list of `WordVector` per input text (empty for an empty text).

        Raises:
            TypeError: `sentences` is not a list of strings (names the bad index); raised
                before any text is embedded.
            ValueError: a bad option (names the allowed values).
        """
        sentences = _checked_sentences(sentences)
        return list(self.iter_words(sentences, layers=layers, combine=combine,
                                    subword_pooling=subword_pooling, dim=dim, batch_size=batch_size,
                                    max_seq_length=max_seq_length, progress=progress))

    def iter_words(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                   combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                   batch_size: int | None = None, max_seq_length: int | None = None,
                   progress: bool | None = None, chunk_size: int = CHUNK_SIZE) -> Iterator[list[WordVector]]:
        """Like `embed_words`, but yields one text's words at a time, in input order.

        Works through the input `chunk_size` texts at a time, so memory stays bounded
        on inputs of any length. A list or tuple is checked whole before anything is
        embedded; from any other iterable, an element that is not a str raises a
        TypeError naming its index as soon as it is read, before its chunk is embedded.
        """
        for words, _ in self.iter_embed(sentences, layers=layers, combine=combine,
                                        subword_pooling=subword_pooling, dim=dim, sentence_strategy=None,
                                        batch_size=batch_size, max_seq_length=max_seq_length,
                                        progress=progress, chunk_size=chunk_size):
            yield words

    def iter_embed(self, sentences: Iterable[str], *, layers: Sequence[int] | None = None,
                   combine: str = "sum", subword_pooling: str = "mean", dim: int | None = None,
                   sentence_strategy: str | None = "mean", sentence_layer: int = -2,
                   batch_size: int | None = None, max_seq_length: int | None = None,
                   progress: bool | None = None,
                   chunk_size: int = CHUNK_SIZE) -> Iterator[tuple[list[WordVector], np.ndarray | None]]:
        """Word vectors and the sentence vector of each text from ONE pass of the model.

        Yields `(words, sentence_vector)` per text in input order (`sentence_vector` is
        None when `sentence_strategy` is None). Options as in `embed_words` and
        `sentence_vectors`. Memory stays bounded: `chunk_size` texts at a time. Bad
        elements fail as in `iter_words`: a list or tuple before anything is embedded,
        a stream as soon as the element is read.
        """
        layers = self._resolve_layers(layers)
        check_choice("combine", combine, COMBINE_CHOICES)
        check_choice("subword_pooling", subword_pooling, SUBWORD_POOLING_CHOICES)
        if sentence_strategy is not None:
            check_choice("sentence_strategy", sentence_strategy, SENTENCE_STRATEGIES)
        (sentence_layer,) = self._check_layers((sentence_layer,), name="sentence_layer")
        width = self.hidden_size * (len(layers) if combine == "concat" else 1)
        dim = self._check_dim(dim, width)
        specs = ((layers, combine),)
        if sentence_strategy in ("mean", "max", "cls"):
            specs += (((sentence_layer,), "sum"),)
        for texts, tokenized in self._chunks(sentences, chunk_size):

            def reduce(t, features, pooled):
                tok = tokenized[t]
                word_vecs = _pool_words(features[0][1:-1], tok.pieces_per_word, subword_pooling)
                if dim is not None:
                    word_vecs = np.ascontiguousarray(word_vecs[:, :dim])
                pieces = self._vocab[tok.ids]
                bounds = np.concatenate([[0], np.cumsum(tok.pieces_per_word)])
                words = [WordVector(text, int(s), int(e), tuple(pieces[bounds[k]:bounds[k + 1]]), word_vecs[k])
                         for k, (text, s, e) in enumerate(zip(tok.words, tok.starts, tok.ends))]
                sentence = (None if sentence_strategy is None else
                            _sentence_vector(sentence_strategy, features[-1], pooled))
                return words, sentence

            yield from self._run(tokenized, specs, batch_size, max_seq_length, progress, reduce)

    def sentence_vectors(self, sentences: Iterable[str], *, strategy: str = "mean", layer: int = -2,
                         batch_size: int | None = None, max_seq_length: int | None = None,
                         progress: bool | None = None) -> np.ndarray:
        """One vector per text, `[n_texts, hidden]` float32.

        Strategies:
            * "mean": the mean over the text's tokens of hidden layer `layer` (default -2,
              the second-to-last layer, as in the research notebook). Padding is excluded;
              `[CLS]` and `[SEP]` are included, as the notebook's mean over all tokens did.
            * "max": the element-wise maximum over the same tokens.
            * "cls": the `[CLS]` token's vector at `layer`.
            * "pooled": BERT's pooler output (tanh(dense([CLS]) of the last layer));
              `layer` is ignored.

        Long texts are windowed as in `embed_words`; "cls" and "pooled" then come from
        the first window.
        """
        check_choice("strategy", strategy, SENTENCE_STRATEGIES)
        (layer,) = self._check_layers((layer,), name="layer")
        sentences = _checked_sentences(sentences)
        out = []
        for texts, tokenized in self._chunks(sentences, CHUNK_SIZE):
            out.extend(self._run(tokenized, (((layer,), "sum"),), batch_size, max_seq_length, progress,
                                 lambda t, features, pooled: _sentence_vector(strategy, features[0], pooled)))
        if not out:
            return np.zeros((0, self.hidden_size), np.float32)
        return np.stack(out).astype(np.float32, copy=False)

    def token_states(self, sentences: Iterable[str], *, batch_size: int | None = None,
                     max_seq_length: int | None = None) -> list[TokenStates]:
        """All hidden states of every token, `[num_hidden_layers + 1, n_tokens, hidden]` per text."""
        all_layers = tuple(range(self.config.num_hidden_layers + 1))
        sentences = _checked_sentences(sentences)
        result = []
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        for texts, tokenized in self._chunks(sentences, CHUNK_SIZE):

            def reduce(t, features, pooled):
                tok = tokenized[t]
                ids = np.concatenate([[cls_id], tok.ids, [sep_id]]).astype(np.int32)
                word_index = np.concatenate([[-1], np.repeat(np.arange(len(tok.words)), tok.pieces_per_word),
                                             [-1]]).astype(np.int32)
                return TokenStates(tuple(self._vocab[ids]), ids, word_index,
                                   np.ascontiguousarray(features[0].transpose(1, 0, 2)))  # a copy

            result.extend(self._run(tokenized, ((all_layers, "stack"),), batch_size, max_seq_length, False, reduce))
        return result

    # ------------------------------------------------------------------ validation

    def _resolve_layers(self, layers) -> tuple[int, ...]:
        """`layers` checked and made non-negative; None is `default_layers`."""
        if layers is not None:
            return self._check_layers(layers)
        if self.default_layers != DEFAULT_LAYERS and not self._said_default_layers:
            self._said_default_layers = True  # once per embedder: the CLI calls this for every chunk
            n = self.config.num_hidden_layers
            logger.info("this model has %d layer(s), fewer than the %d the default combines; using all of "
                        "them (layers=%s)", n, len(DEFAULT_LAYERS), ",".join(map(str, self.default_layers)))
        return self._check_layers(self.default_layers)

    def _check_layers(self, layers, name: str = "layers") -> tuple[int, ...]:
        n = self.config.num_hidden_layers + 1
        if isinstance(layers, (int, np.integer)):
            layers = (int(layers),)
        try:
            layers = tuple(layers)
        except TypeError:
            raise TypeError(f"{name} must be a sequence of integers; got {layers!r}") from None
        if not layers:
            raise ValueError(f"{name} must name at least one hidden layer")
        out = []
        for layer in layers:
            if not isinstance(layer, (int, np.integer)) or isinstance(layer, bool) or not -n <= layer < n:
                hint = "; leave layers unset for all of them" if name == "layers" and n - 1 < 4 else ""
                raise ValueError(f"{name} must be integers from {-n} to {n - 1} for this "
                                 f"{n - 1}-layer model (0 is the embedding output, -1 the last layer); "
                                 f"got {layer!r}{hint}")
            out.append(int(layer) % n)
        if len(set(out)) != len(out):
            raise ValueError(f"{name} names the same layer twice: {layers!r}")
        return tuple(out)

    def _check_dim(self, dim, width: int) -> int | None:
        if dim is None:
            return None
        if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be a positive integer or None; got {dim!r}")
        if dim > width:
            raise ValueError(f"dim={dim} is larger than the vectors this model makes ({width}: hidden size "
                             f"{self.hidden_size} with these layers and combine); use dim=None or at most {width}")
        if dim < width:
            logger.info("dim=%d keeps the first %d of %d components and discards the rest; "
                        "use dim=None for full vectors", dim, dim, width)
        return int(dim)

    # ------------------------------------------------------------------ machinery

    def _chunks(self, sentences, chunk_size) -> Iterator[tuple[list[str], list[_Tokenized]]]:
        """Validates, sanitises and tokenizes the input `chunk_size` texts at a time."""
        from bert_tf.tokenization import prepare_sentences

        if isinstance(sentences, (list, tuple)):
            _checked_sentences(sentences)  # all of it, before the first chunk is embedded
        buffer: list = []
        for index, item in enumerate(_iterate(sentences)):
            _check_sentence(index, item)  # a stream: before the chunk holding it is embedded
            buffer.append(item)
            if len(buffer) >= chunk_size:
                texts = prepare_sentences(buffer)
                yield texts, self._tokenize(texts)
                buffer = []
        if buffer:
            texts = prepare_sentences(buffer)
            yield texts, self._tokenize(texts)

    def _tokenize(self, texts: list[str]) -> list[_Tokenized]:
        if not texts:
            return []
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

    def _segments(self, tokenized: list[_Tokenized], max_seq_length: int) -> list[_Segment]:
        cls_id, sep_id = self.tokenizer.cls_id, self.tokenizer.sep_id
        span = max_seq_length - 2
        segments = []
        for i, tok in enumerate(tokenized):
            n = len(tok.ids)
            starts = _window_starts(n, span)
            for w, start in enumerate(starts):
                ids = np.concatenate([[cls_id], tok.ids[start:start + span], [sep_id]]).astype(np.int32)
                segments.append(_Segment(i, w, start, ids))
        return segments

    def _run(self, tokenized: list[_Tokenized], specs: tuple, batch_size: int | None,
             max_seq_length: int | None, progress: bool | None, reduce) -> list:
        """Runs the model once over all texts, handing each text to `reduce` as soon as it is complete.

        Args:
            specs: `((layers, combine), ...)`: the features to compute, each a
                combination of hidden layers ("sum", "mean", "concat" or "stack").
            reduce: `reduce(t, features, pooled) -> result` for text `t`: `features[f]` is
                `[n_tokens, ...]` for spec `f` (tokens: [CLS], pieces, [SEP]; a long text's
                windows already stitched together), `pooled` the pooler output. It must copy
                whatever it keeps: a batch's token vectors are dropped once its texts are
                reduced, which is what holds memory to one batch of them however many texts
                there are.

        Returns:
            `reduce`'s results, in text order.
        """
        batch_size = self.batch_size if batch_size is None else self._check_batch_size(batch_size)
        max_seq_length = (self.max_seq_length if max_seq_length is None
                          else self._check_max_seq_length(max_seq_length))
        forward = self._forward(specs)
        segments = self._segments(tokenized, max_seq_length)
        n_windows = np.bincount([s.text_index for s in segments], minlength=len(tokenized))
        waiting: dict[int, dict[int, tuple]] = {}  # long text -> window -> (piece_start, features, pooled)
        results: list = [None] * len(tokenized)
        batches = _plan_batches([len(s.ids) for s in segments], batch_size, max_seq_length)
        for batch in _progress(batches, progress, total_texts=len(tokenized)):
            ids, mask = _batch_arrays([segments[k] for k in batch], max_seq_length)
            *flats, pooled_batch = (t.numpy() for t in forward(tf.constant(ids), tf.constant(mask)))
            bounds = np.concatenate([[0], np.cumsum(mask.sum(axis=1))])
            for row, k in enumerate(batch):
                segment, t = segments[k], segments[k].text_index
                features = [flat[bounds[row]:bounds[row + 1]] for flat in flats]
                if n_windows[t] == 1:
                    results[t] = reduce(t, features, pooled_batch[row])
                    continue
                # Copies, so a long text waiting for its other windows does not pin whole batches.
                windows = waiting.setdefault(t, {})
                windows[segment.window] = (segment.piece_start, [f.copy() for f in features],
                                           pooled_batch[row].copy())
                if len(windows) == n_windows[t]:
                    del waiting[t]
                    parts = [windows[w] for w in range(n_windows[t])]
                    starts = np.array([start for start, _, _ in parts])
                    stitched = [_stitch(len(tokenized[t].ids), starts, [f[i] for _, f, _ in parts],
                                        max_seq_length - 2) for i in range(len(flats))]
                    results[t] = reduce(t, stitched, parts[0][2])  # pooled output: the first window's
        return results

    def _forward(self, specs: tuple):
        """One traced graph per set of features: ids, mask -> real-token features..., pooled output."""
        with self._lock:
            if specs not in self._forwards:
                self._forwards[specs] = _make_forward(self.encoder, specs)
            return self._forwards[specs]


def _make_forward(encoder, specs: tuple):
    spec = tf.TensorSpec([None, None], tf.int32)

    @tf.function(input_signature=[spec, spec], autograph=False)
    def forward(ids, mask):
        # Hidden states of the real tokens only, [tokens, hidden] each, in row-major order:
        # the dense layers never see padding (see BertEncoder.token_states).
        states, pooled = encoder.token_states(ids, mask)
        results = []
        for layers, combine in specs:
            picked = [states[i] for i in layers]
            if combine == "stack":  # [tokens, layers, hidden]
                x = tf.stack(picked, axis=1)
            elif combine == "concat":
                x = tf.concat(picked, axis=-1)
            else:
                x = tf.add_n(picked) if len(picked) > 1 else picked[0]
                if combine == "mean":
                    x = x / float(len(picked))
            results.append(x)
        return (*results, pooled)

    return forward


def _stitch(n: int, starts: np.ndarray, outputs: list[np.ndarray], span: int) -> np.ndarray:
    """Joins one long text's window outputs into one `[CLS] pieces [SEP]` array of `n` pieces.

    Each piece comes from the window where it has the most context (`_max_context_window`);
    [CLS] from the first window, [SEP] from the last.
    """
    best = _max_context_window(n, starts, span)  # [n] window index per piece
    pieces = np.empty((n,) + outputs[0].shape[1:], outputs[0].dtype)
    for w, out in enumerate(outputs):
        chosen = np.nonzero(best == w)[0]
        pieces[chosen] = out[1 + chosen - starts[w]]
    return np.concatenate([outputs[0][:1], pieces, outputs[-1][-1:]])


def _sentence_vector(strategy: str, token_vectors: np.ndarray, pooled: np.ndarray) -> np.ndarray:
    """One text's sentence vector: a new array, never a view into the batch's outputs."""
    if strategy == "mean":
        return token_vectors.mean(axis=0)
    if strategy == "max":
        return token_vectors.max(axis=0)
    if strategy == "cls":
        return token_vectors[0].copy()
    return pooled.copy()


def _window_starts(n: int, span: int) -> list[int]:
    """Start offsets of windows of `span` pieces covering `n` pieces with half-window overlap."""
    if n <= span:
        return [0]
    stride = max(1, span // 2)
    starts = list(range(0, n - span, stride))
    starts.append(n - span)
    return starts


def _max_context_window(n: int, starts: np.ndarray, span: int) -> np.ndarray:
    """For each of `n` pieces, the window (index into `starts`) where it has the most context.

    Google's `run_squad.py` rule: score = min(left context, right context) + 0.01 * window length.
    """
    position = np.arange(n)[:, None]
    ends = np.minimum(starts + span, n)
    inside = (position >= starts[None, :]) & (position < ends[None, :])
    score = np.minimum(position - starts[None, :], ends[None, :] - 1 - position) + 0.01 * (ends - starts)[None, :]
    return np.where(inside, score, -np.inf).argmax(axis=1)


def _pool_words(vectors: np.ndarray, pieces_per_word: np.ndarray, how: str) -> np.ndarray:
    """Pools piece vectors `[n_pieces, d]` into word vectors `[n_words, d]` (vectorised)."""
    if len(pieces_per_word) == 0:
        return np.zeros((0,) + vectors.shape[1:], np.float32)
    bounds = np.concatenate([[0], np.cumsum(pieces_per_word)[:-1]])
    if how == "first":
        return vectors[bounds]
    if how == "last":
        return vectors[bounds + pieces_per_word - 1]
    sums = np.add.reduceat(vectors, bounds, axis=0)
    return (sums / pieces_per_word.reshape((-1,) + (1,) * (vectors.ndim - 1))).astype(np.float32)


def _check_sentence(index: int, item) -> None:
    if not isinstance(item, str):
        hint = " (decode bytes first)" if isinstance(item, (bytes, bytearray)) else ""
        raise TypeError(f"sentences[{index}] is {type(item).__name__}, expected str{hint}")


def _checked_sentences(sentences) -> list[str] | tuple[str, ...]:
    """`sentences` as a list (a list or tuple as is), every element checked.

    For the calls that return everything at once: a bad element fails before any
    text is embedded, not after the work on the texts before it.
    """
    items = sentences if isinstance(sentences, (list, tuple)) else list(_iterate(sentences))
    for index, item in enumerate(items):
        _check_sentence(index, item)
    return items


def _iterate(sentences):
    if sentences is None:
        raise TypeError("expected a list of strings, got None")
    if isinstance(sentences, (str, bytes)):
        raise TypeError(f"expected a list of strings, got a single {type(sentences).__name__}; "
                        f"wrap it in a list: [text]")
    try:
        return iter(sentences)
    except TypeError:
        raise TypeError(f"expected a list of strings, got {type(sentences).__name__}") from None


def _progress(batches, progress, total_texts):
    show = progress if progress is not None else (len(batches) > 4 and sys.stderr.isatty())
    if not show:
        return batches
    from tqdm.auto import tqdm

    return tqdm(batches, desc=f"embedding {total_texts} texts", unit="batch", file=sys.stderr, leave=False)


# ---------------------------------------------------------------------- get_bert_embeddings

_EMBEDDERS: dict[tuple, BertEmbedder] = {}
_EMBEDDERS_LOCK = threading.Lock()


def get_embedder(checkpoint: str | os.PathLike | None = None, *, lower_case: bool | None = None) -> BertEmbedder:
    """The cached `BertEmbedder` for a checkpoint: loaded once per process, then reused.

    One model per checkpoint and casing: `lower_case=None` and the casing it resolves to
    share one copy.

    Raises:
        TypeError: `lower_case` is not True, False or None.
    """
    from bert_tf.resolve import resolve_checkpoint
    from bert_tf.tokenization import check_lower_case

    lower_case = check_lower_case(lower_case)
    directory = os.path.realpath(resolve_checkpoint(checkpoint))
    key = (directory, lower_case)
    with _EMBEDDERS_LOCK:
        if key not in _EMBEDDERS:
            embedder = BertEmbedder.from_checkpoint(directory, lower_case=lower_case)
            _EMBEDDERS[key] = _EMBEDDERS.setdefault((directory, embedder.lower_case), embedder)
        return _EMBEDDERS[key]


def get_bert_embeddings(sentences: Sequence[str], dim: int | None = None, *,
                        checkpoint: str | os.PathLike | None = None,
                        layers: Sequence[int] | None = None, combine: str = "sum",
                        subword_pooling: str = "mean", batch_size: int | None = None,
                        max_seq_length: int | None = None, lower_case: bool | None = None,
                        progress: bool | None = None) -> list[dict[str, np.ndarray]]:
    """Contextual word vectors, one dict per sentence: word -> float32 vector.

    Each vector sums (by default) the last four hidden layers of the word's pieces (all of
    them for a model with fewer than four) and averages the pieces, as in the research
    notebooks this package grew from.

    The keys are the words as the model sees them: lower-cased and accent-stripped
    for uncased checkpoints, with punctuation and CJK characters as words of their own.
    When a word occurs more than once in a sentence, the dict holds its FIRST
    occurrence; use `BertEmbedder.embed_words` for every occurrence with offsets.

    Args:
        sentences: a list of strings.
        dim: keep the first `dim` components; None (default) keeps the full width.
            A smaller value discards information (logged); a larger one is a ValueError.
        checkpoint: checkpoint directory; None resolves BERT_TF_CHECKPOINT, then
            checkpoints/uncased_L-12_H-768_A-12, then the offline all-MiniLM-L6-v2 model.
        layers: hidden layers to combine (negative = from the last). None (default) is the
            last four, (-4, -3, -2, -1), or all the layers of a model with fewer than four.
        combine: "sum", "mean" or "concat" over `layers`.
        subword_pooling: "mean", "first" or "last" over a word's pieces.
        batch_size: the most texts per model call; None (default) sizes each call by its
            texts' lengths (`MAX_BATCH_POSITIONS` padded positions), which runs fastest.
        max_seq_length: longest model input in pieces, [CLS] and [SEP] included; longer texts use
            overlapping windows. None means the checkpoint's limit (512 for Google's checkpoints).
        lower_case: True or False overrides the checkpoint's casing; None (default) reads it
            from the checkpoint. Nothing else is accepted (a string such as "false" is a TypeError).
        progress: progress bar on stderr (None: automatic for long inputs).

    Returns:
        `[{word: vector}, ...]`, one dict per sentence, in input order.

    Raises:
        TypeError: `sentences` is not a list of strings (names the bad index), or
            `lower_case` is not True, False or None; raised before the model is loaded.
        ValueError: a bad option (names the allowed values).

    Example:
        >>> emb = get_bert_embeddings(["A mouse is a rodent animal.", "A mouse is a computer device."])
        >>> from sklearn.metrics.pairwise import cosine_similarity
        >>> cosine_similarity([emb[0]["mouse"]], [emb[1]["mouse"]])[0, 0] < 1.0
        True
    """
    sentences = _checked_sentences(sentences)  # before the model is loaded or run
    embedder = get_embedder(checkpoint, lower_case=lower_case)
    results = embedder.embed_words(sentences, layers=layers, combine=combine, subword_pooling=subword_pooling,
                                   dim=dim, batch_size=batch_size, max_seq_length=max_seq_length,
                                   progress=progress)
    out = []
    for words in results:
        d: dict[str, np.ndarray] = {}
        for w in words:
            d.setdefault(w.text, w.vector)
        out.append(d)
    return out
