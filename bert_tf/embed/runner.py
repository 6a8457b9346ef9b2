"""`ChunkRunner`: one chunk of tokenized texts through the model and the head, into `Embeddings` columns.

The machinery behind `BertEmbedder`, which keeps the public API, the options and the input checks:

- `tokenize`: the in-graph tokenizer's output as the columns of an `Embeddings` without outputs.
- `plan` and `call_arrays`: the batch plan (`batching.plan`) and the `(ids, mask)` of each of its calls.
- `run`: the calls through the traced graphs (`graph`), each group of texts reduced by the head as soon
  as the plan says it is complete; a request of one call runs encoder and head as one graph.
- `graph`: the traced graphs, one set per options, cached, counted by `traces`.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Callable, Iterator

import numpy as np

from bert_tf.embed import calls as model_calls
from bert_tf.embed.batching import ModelCall, call_arrays, plan
from bert_tf.embed.graphs import (FunctionCall, encode_graph, head_graph, lay_out, layouts_by_size, one_call_graph,
                                  size_class, tracing_count)
from bert_tf.embed.options import ResolvedOptions
from bert_tf.embed.results import Embeddings, ranges
from bert_tf.runtime import tf


class ChunkRunner:
    """Runs chunks of texts through one model's encoder and head; thread-safe, its graphs cached."""

    def __init__(self, config, encoder, tokenizer):
        self.config = config
        self.encoder = encoder
        self.tokenizer = tokenizer
        self._calls = model_calls.CallPool()
        self._graphs: dict[tuple, object] = {}  # `graphs`' graphs, by options (`graph`)
        self._columns = None  # the tokenizer's `tokenize_columns`, as a `graphs.FunctionCall` (`tokenize`)
        self._lock = threading.Lock()
        self.vocab = np.array(list(tokenizer.vocab), dtype=object)  # id -> piece, vectorised lookups

    @property
    def traces(self) -> int:
        """How many graphs have been traced (see `BertEmbedder.traces`)."""
        return sum(tracing_count(g) for g in self._graphs.values())

    def tokenize(self, texts: list[str]) -> Embeddings:
        """The tokenizer's output for `texts`, as the columns of an `Embeddings` without outputs."""
        if self._columns is None:  # called as the op it is: a query's time (`graphs.FunctionCall`)
            self._columns = FunctionCall(self.tokenizer.tokenize_columns.get_concrete_function())
        texts = tf.constant([t.encode("utf-8") for t in texts], tf.string)
        out = {name: x.numpy() for name, x in self._columns(texts).items()}
        pieces_per_word = out["pieces_per_word"]  # all texts
        piece_ids = out["piece_ids"].astype(np.int32)
        word_splits = out["word_splits"].astype(np.int64)
        return Embeddings(
            words=[x.decode("utf-8") for x in out["words"]], starts=out["starts"], ends=out["ends"],
            pieces_per_word=pieces_per_word, word_splits=word_splits, piece_ids=piece_ids,
            piece_splits=np.concatenate([[0], np.cumsum(pieces_per_word)])[word_splits],
            pieces=self.vocab[piece_ids])

    def plan(self, tokens: Embeddings, resolved: ResolvedOptions) -> dict[str, np.ndarray]:
        return plan(np.diff(tokens.piece_splits), resolved.max_seq_length, resolved.options.batch_size)

    def call_arrays(self, plan: dict[str, np.ndarray], c: int, tokens: Embeddings):
        return call_arrays(plan, c, tokens.piece_ids, tokens.piece_splits, self.tokenizer.cls_id,
                           self.tokenizer.sep_id)

    def run(self, tokens: Embeddings, resolved: ResolvedOptions, kinds: tuple[str, ...], progress: bool | None, *,
            streams: int, on_call: Callable[[ModelCall], None] | None) -> Embeddings:
        """Runs the model over a chunk's texts; the head reduces each group of texts the plan says is
        complete after a call (`ready`), so memory holds about one call of token vectors.

        Only the plan's `ready` decides what is complete: the rows of a call past it (the first
        windows of a text that continues in the next call) are kept, copied so no call stays
        pinned, and go to the head with the next call's.
        """
        plan = self.plan(tokens, resolved)
        span = np.int64(resolved.span)
        n = np.diff(tokens.piece_splits)
        n_texts = len(n)
        words = np.empty((len(tokens.words), resolved.vector_size), np.float32) if "words" in kinds else None
        sentence = np.empty((n_texts, self.config.hidden_size), np.float32) if "sentence" in kinds else None
        states = (np.empty((int(n.sum()) + 2 * n_texts, self.config.num_hidden_layers + 1,
                            self.config.hidden_size), np.float32) if "states" in kinds else None)
        token_splits = tokens.token_splits

        def head_inputs(texts):  # the head's n and pieces_per_word for these texts, in this order (numpy: as `ids`)
            return n[texts].astype(np.int64), tokens.pieces_per_word[ranges(tokens.word_splits, texts)].astype(np.int64)

        def land(out, texts):  # the head's outputs (tensors, or numpy from LiteRT) for these texts, into the columns
            if words is not None:
                words[ranges(tokens.word_splits, texts)] = out["words"]
            if sentence is not None:
                sentence[texts] = out["sentence"]
            if states is not None:
                states[ranges(token_splits, texts)] = out["states"]

        if len(plan["call_padded"]) == 1:  # every text complete after one call: encoder, then head, no numpy between
            for _ in model_calls.progress_bar(range(1), progress, n_texts):
                started = time.perf_counter()
                ids, mask = self.call_arrays(plan, 0, tokens)
                texts = plan["text_order"]
                graph = self.graph(resolved, kinds, one_call=True, size=size_class(1, int(mask.sum())),
                                    windows=bool(plan["num_windows"].max() > 1))
                land(graph(ids, mask, *head_inputs(texts), span), texts)  # numpy: an OutsideEncode reads it
                if on_call is not None:
                    finished = time.perf_counter()
                    on_call(ModelCall(len(ids), ids.shape[1], int(mask.sum()), finished - started,
                                           (started, finished)))
            return dataclasses.replace(tokens, word_vectors=words, sentence_vectors=sentence, token_states=states)
        ready, ready_texts, token_ends = plan["ready"], plan["ready_texts"], plan["token_splits"]
        pending: list[dict[str, np.ndarray]] = []  # outputs of rows not yet complete, in call order
        encode, reduce = self.graph(resolved, kinds, size=size_class(len(plan["call_padded"]), int(token_ends[-1])))
        calls = self.encoded(plan, tokens, encode, streams)
        for c, (ids, mask, encoded, encode_started, seconds) in zip(
                model_calls.progress_bar(range(len(plan["call_padded"])), progress, n_texts), calls):
            started = time.perf_counter()
            pending.append(encoded)
            if ready[c + 1] > ready[c]:
                rows = int(ready[c + 1] - ready[c])
                cut = int(token_ends[ready[c + 1]] - token_ends[ready[c]])
                whole = pending[0] if len(pending) == 1 else {
                    name: np.concatenate([p[name] for p in pending]) for name in pending[0]}
                done = {name: x[:rows] if name == "pooled" else x[:cut] for name, x in whole.items()}
                rest = {name: x[rows:] if name == "pooled" else x[cut:] for name, x in whole.items()}
                pending = [{name: x.copy() for name, x in rest.items()}] if len(rest["pooled"]) else []
                texts = plan["text_order"][ready_texts[c]:ready_texts[c + 1]]
                land(reduce({name: tf.constant(x) for name, x in done.items()}, *head_inputs(texts), span), texts)
            if on_call is not None:
                finished = time.perf_counter()
                on_call(ModelCall(len(ids), ids.shape[1], int(mask.sum()), seconds + finished - started,
                                       (encode_started, finished)))
        return dataclasses.replace(tokens, word_vectors=words, sentence_vectors=sentence, token_states=states)

    def encoded(self, plan: dict[str, np.ndarray], tokens: Embeddings, encode, streams: int) -> Iterator[tuple]:
        """`(ids, mask, encoder outputs as numpy, start, seconds)` of each call of `plan`, in plan order
        (`start`: `time.perf_counter()` when the call began).

        With `streams` > 1 they run that many at once on this runner's `CallPool` (`calls.py`).
        """
        def call(c: int):
            started = time.perf_counter()
            ids, mask = self.call_arrays(plan, c, tokens)
            out = {name: x.numpy() for name, x in encode(ids, mask).items()}  # numpy in: as `run`'s one call
            return ids, mask, out, started, time.perf_counter() - started

        # More than one call: `run` gives a one-call plan its own path.
        return self._calls.run(call, len(plan["call_padded"]), streams)

    def graph(self, resolved: ResolvedOptions, kinds: tuple[str, ...], *, size: str, one_call: bool = False,
               windows: bool = True):
        """The traced encoder call and head for these options: one pair per options, any batch shape; with
        `one_call`, the two as one call (`graphs.one_call_graph`), for a request that makes one call, its
        head without stitching where no text has `windows`. Where `graphs.layouts_by_size`, the encoder call
        of each `graphs.size_class` (`size`), laid out for it."""
        options = resolved.options
        features = {}
        if "words" in kinds:
            features["words"] = (resolved.hidden_states, options.combine)
        if "sentence" in kinds and options.sentence_strategy != "pooled":
            features["sentence"] = ((resolved.sentence_state,), "sum")
        if "states" in kinds:
            features["states"] = (tuple(range(self.config.num_hidden_layers + 1)), "stack")
        key = (tuple(features.items()), kinds, options.subword_pooling, options.sentence_strategy, options.dim)
        by_size = layouts_by_size(self.encoder)
        encode_key = key + (size,) if by_size else key
        head_key = key + ("head", windows)
        with self._lock:
            if head_key not in self._graphs:
                self._graphs[head_key] = head_graph(self.config, features, kinds, options, windows=windows)
            if encode_key not in self._graphs:
                encode = encode_graph(self.encoder, features)
                if by_size:
                    lay_out(encode, size, self.config.max_position_embeddings, self.tokenizer.cls_id)
                self._graphs[encode_key] = encode
            if not one_call:
                return self._graphs[encode_key], self._graphs[head_key]
            one_call_key = encode_key + ("one call", windows)
            if one_call_key not in self._graphs:
                self._graphs[one_call_key] = one_call_graph(self._graphs[encode_key], self._graphs[head_key],
                                                            windows=windows)
            return self._graphs[one_call_key]

