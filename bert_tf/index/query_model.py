"""`QueryModel`: a query embedded as an index's texts were, and normalised as its vectors were.

A query compares with an index's stored vectors only when it comes from the same vector
space: the same checkpoint, casing, precision and options. The query model holds the
index's space and corpus statistics. It refuses another embedder or options (naming every
difference), loads the index's model on first use (from the path the index records, or
from where the checkpoint has moved), finds the query's word or words in its sentence, and
normalises their vectors with the index's own statistics and scoring, so that they compare
by cosine with the stored unit vectors. Splitting text into words needs only the recorded
casing, not the model, so a query by word alone (`senses`, `shift`) needs no checkpoint.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from bert_tf.embed.options import EmbeddingOptions
from bert_tf.embed.space import VectorSpace
from bert_tf.errors import InvalidValue
from bert_tf.index import layout
from bert_tf.index.query import check_query, marked_span
from bert_tf.index.scoring import VectorStats, normalize
from bert_tf.index.spans import find_phrase, pool_span, unit, words_in_span

logger = logging.getLogger("bert_tf")


class QueryModel:
    """The model an index's queries are embedded with, checked against the index's vector space.

    Args:
        directory: the index folder (named in messages).
        space: the index's `VectorSpace`.
        stats: `{"words" | "sentences": VectorStats}` of the index's corpus; None for a kind it has no vectors of.
        scoring: the index's scoring (`bert_tf.index.scoring`).
        embedder: the `BertEmbedder` to embed with; checked now. Default: loaded on first use.
        checkpoint: where the index's checkpoint is now, if it has moved.
    """

    def __init__(self, directory: Path, space: VectorSpace, stats: dict[str, VectorStats | None], scoring: str, *,
                 embedder=None, checkpoint=None):
        self.directory, self.space, self.stats, self.scoring = directory, space, stats, scoring
        self._checkpoint = checkpoint
        self._word_tokenizer = None  # made on first use while no embedder is loaded
        if embedder is not None:
            self.check_embedder(embedder)
        self._embedder = embedder

    @property
    def options(self) -> EmbeddingOptions:
        """The embedding options of the index's vectors (queries are embedded with them): `space.options()`."""
        return self.space.options()

    def check_embedder(self, embedder) -> None:
        """Raises `IndexMismatchError` unless `embedder` makes this index's vectors (with the index's options)."""
        try:
            space = embedder.space(self.options)
        except ValueError:  # another model, which cannot serve the index's options (layers, dim): named
            self.check_space(embedder.space())
            raise
        self.check_space(space)

    def check_options(self, options: EmbeddingOptions) -> None:
        """Raises `IndexMismatchError` unless `options` make this index's vectors (with its model)."""
        self.check_space(self.embedder.space(options))

    def check_space(self, space: VectorSpace) -> None:
        """Raises `IndexMismatchError`, naming every difference, unless vectors of `space` compare with the index's."""
        if not self.space.compatible(space):
            raise layout.IndexMismatchError(
                f"the index {self.directory} holds other vectors than the query's: "
                f"{self.space.describe_differences(space, this='the index', that='the query')}; query it with the "
                "index's checkpoint, casing, precision and options (leave them out to use the index's)")

    @property
    def embedder(self):
        """The model queries are embedded with: loaded on first use from `checkpoint` or the recorded path,
        with the recorded casing and precision.

        Raises:
            CheckpointNotFoundError: the recorded checkpoint is no longer where it was (the message
                names it and says to pass `--checkpoint`).
        """
        if self._embedder is None:
            from bert_tf.embed.api import get_embedder
            from bert_tf.store.resolve import CheckpointNotFoundError

            path = self._checkpoint or self.space.path
            if self._checkpoint is None and path and not os.path.exists(path):
                raise CheckpointNotFoundError(
                    f"the index {self.directory} was built with the checkpoint {path}, which is no longer there; "
                    "pass --checkpoint DIR (checkpoint= in Python) with the folder it is in now")
            embedder = get_embedder(path, lower_case=self.space.lower_case, precision=self.space.precision)
            self.check_embedder(embedder)
            self._embedder = embedder
        return self._embedder

    def embed(self, sentence: str):
        """`(words, sentence_vector)` of a query sentence, embedded as the index's texts were."""
        from bert_tf.text.inputs import check_text

        sentence = check_text(0, sentence)
        ((words, vector),) = list(self.embedder.iter_embed([sentence], self.options, progress=False))
        return words, vector

    def model_word(self, word: str) -> str:
        """`word` as the model sees it (lower-cased, accents stripped by an uncased model).

        Needs no model: splitting words and normalising them depends only on the casing, which the
        index records (the vocabulary splits words into pieces, not text into words).

        Raises:
            ValueError: `word` is no word, or several to the model (`New York`, `don't`).
        """
        words = self.model_words(word)
        if len(words) != 1:
            seen = " ".join(words) or "nothing"
            raise InvalidValue(f"{word!r} is {len(words)} words to the model ({seen}); give one word")
        return words[0]

    def model_words(self, text: str) -> list[str]:
        """The words of `text` as the model sees them (`Big Apple` -> `['big', 'apple']` for an uncased model)."""
        return [w.text for w in self.word_tokenizer.tokenize_words([text])[0]]

    @property
    def word_tokenizer(self):
        """A tokenizer that gives the index's words (not its pieces): the query model's when it is loaded,
        else one with the recorded casing and only BERT's special tokens, so `senses` needs no checkpoint."""
        if self._embedder is not None:
            return self._embedder.tokenizer
        if self._word_tokenizer is None:
            from bert_tf.text.tokenization import SPECIAL_TOKENS, BertTokenizer

            self._word_tokenizer = BertTokenizer(SPECIAL_TOKENS, lower_case=self.space.lower_case)
        return self._word_tokenizer

    def query_sentence(self, sentence: str) -> np.ndarray:
        """The unit sentence vector of a query sentence, to compare with the index's texts."""
        _, vector = self.embed(sentence)
        return self.normalized(layout.SENTENCES, vector)

    def query_occurrence(self, word: str, sentence: str, occurrence: int | None = None) -> tuple[str, np.ndarray]:
        """`(word as the model sees it, its unit vector)` at one occurrence of it in `sentence`.

        Which occurrence: the one marked `[[like this]]` in `sentence` (the brackets are not
        embedded), else the `occurrence`-th (1-based), else the first (when the word occurs more
        than once, one warning says which was used and how to choose another).

        Raises:
            ValueError: an empty word or sentence; the word is not in the sentence (the message lists
                the sentence's words); `occurrence` out of range; a marked span that is not the word.
        """
        check_query(word=word, sentence=sentence)
        target = self.model_word(word)
        sentence, marked = marked_span(sentence)
        words, _ = self.embed(sentence)
        matches = [w for w in words if w.text == target]
        if not matches:
            raise _not_in_query(f"the word {target!r}", sentence, words)
        if marked is not None:
            if occurrence is not None:
                raise InvalidValue("choose the occurrence once: mark it [[like this]] or give occurrence "
                                 "(--occurrence), not both")
            chosen = [w for w in matches if marked[0] <= w.start and w.end <= marked[1]]
            if not chosen:
                raise InvalidValue(f"the marked span {sentence[marked[0]:marked[1]]!r} is not an occurrence of "
                                 f"{target!r}")
            return target, self.normalized(layout.WORDS, chosen[0].vector)
        if occurrence is not None:
            _check_occurrence(occurrence, len(matches), repr(target))
            return target, self.normalized(layout.WORDS, matches[occurrence - 1].vector)
        if len(matches) > 1:
            first = matches[0]
            logger.warning("using %r at characters %d-%d, occurrence 1 of %d in the query; choose another with "
                           "--occurrence N (occurrence=N) or mark it [[%s]]", target, first.start, first.end,
                           len(matches), sentence[first.start:first.end])
        return target, self.normalized(layout.WORDS, matches[0].vector)

    def query_phrase(self, targets: Sequence[str], sentence: str,
                     occurrence: int | None = None) -> tuple[list[int], np.ndarray]:
        """`(piece count of each word, unit vector)` of one occurrence of the words `targets` (as the model
        sees them, in a row) in `sentence`: its words' normalised vectors pooled as `bert_tf.index.spans` says.

        Which occurrence: the one inside the span marked `[[like this]]`, else the `occurrence`-th
        (1-based), else the first.

        Raises:
            ValueError: the words are not in the sentence (the message lists the sentence's words);
                `occurrence` out of range; a marked span that holds no occurrence of them.
        """
        phrase = " ".join(targets)
        sentence, marked = marked_span(sentence)
        words, _ = self.embed(sentence)
        starts = find_phrase(words, targets)
        if not starts:
            raise _not_in_query(repr(phrase), sentence, words)
        if marked is not None:
            starts = [i for i in starts if marked[0] <= words[i].start and words[i + len(targets) - 1].end <= marked[1]]
            if not starts:
                raise InvalidValue(f"the marked span {sentence[marked[0]:marked[1]]!r} is not an occurrence of "
                                   f"{phrase!r}")
        elif occurrence is not None:
            _check_occurrence(occurrence, len(starts), repr(phrase))
            starts = starts[occurrence - 1:]
        chosen = words[starts[0]:starts[0] + len(targets)]
        counts = [len(w.pieces) for w in chosen]  # a word's pieces do not depend on its context
        vectors = np.stack([self.normalized(layout.WORDS, w.vector) for w in chosen])
        return counts, unit(pool_span(vectors, counts, self.options.subword_pooling))

    def normalized(self, name: str, vector: np.ndarray) -> np.ndarray:
        """A query's word (`name` "words") or sentence ("sentences") vector, normalised as the index's are.

        Raises:
            ValueError: the index holds no vectors of that kind (nothing to compare with).
        """
        if self.stats[name] is None:
            what = "word occurrences" if name == layout.WORDS else "texts"
            raise InvalidValue(f"the index {self.directory} holds no {what}: there is nothing to search")
        return normalize(np.asarray(vector, np.float32)[None, :], self.stats[name], self.scoring)[0]

    def span_vector(self, sentence: str, start: int, end: int) -> np.ndarray:
        """The vector of the words at `sentence[start:end]`, pooled from their pieces as one word's are
        (with the index's options; not normalised: the model's own vector, as `embed` gives words).

        Raises:
            ValueError: the span covers no word or cuts through one.

        Example:
            >>> index.span_vector("She moved to the Big Apple last year.", 17, 26)  # "Big Apple"
        """
        words, _ = self.embed(sentence)
        first, stop = words_in_span(words, start, end)
        chosen = words[first:stop]
        return pool_span(np.stack([w.vector for w in chosen]), [len(w.pieces) for w in chosen],
                         self.options.subword_pooling)


def _not_in_query(what: str, sentence: str, words) -> InvalidValue:
    """The error for a query sentence without `what` (a word or phrase), naming the words the model sees."""
    return InvalidValue(f"{what} is not in the query sentence {sentence!r} (its words as the model sees them: "
                        f"{' '.join(w.text for w in words) or 'none'})")


def _check_occurrence(occurrence, count: int, shown: str) -> None:
    """Raises unless `occurrence` picks one (1-based) of the `count` occurrences of `shown` in the query."""
    if isinstance(occurrence, bool) or not isinstance(occurrence, (int, np.integer)) or not 1 <= occurrence <= count:
        raise InvalidValue(f"occurrence must be from 1 to {count} ({shown} occurs {count} "
                           f"time{'s' if count > 1 else ''} in the query); got {occurrence!r}")


def load_stats(directory: Path, name: str) -> VectorStats | None:
    """The corpus statistics the index's `name` vectors ("words" or "sentences") were normalised with,
    which its queries are normalised with too; None when the index has no vectors of that kind.

    Raises:
        CorruptIndexError: the statistics file cannot be read.
    """
    path = directory / f"{name}_stats.npz"
    if not path.is_file():
        return None  # the index has no vectors of this kind
    try:
        with np.load(path) as arrays:
            return VectorStats.from_arrays(arrays)
    except (OSError, ValueError) as e:
        raise layout.CorruptIndexError(f"{directory} is damaged: {path.name} cannot be read ({e}); rebuild it") \
            from None
