"""Between the padded `[batch, seq, ...]` layout and the real tokens' `[rows, ...]` (`Packing`).

The encoder's dense layers, LayerNorms and residual adds are per token: `BertEncoder.token_states`
runs them on the real tokens only, and lays the tokens out padded for the attention scores alone.
An int8 encoder's blocks also pad the token rows to one of a few counts (`quantize.padded_rows`), so
that XLA, which compiles a kernel per shape, compiles few (`int8_block.py`); those extra rows hold
copies of some row, and nothing reads them back.
"""

from __future__ import annotations

from bert_tf.model.quantize import padded_rows
from bert_tf.runtime import tf


class Packing:
    """Moves per-token tensors between the padded `[batch, seq, ...]` layout and `[rows, ...]`.

    `tokens` are the real (mask = 1) positions in row-major order, the order
    `tf.boolean_mask(x, mask)` gives; `rows` is their count, or with `pad_rows` the count they are
    padded to (`quantize.padded_rows`): rows past the tokens are padding, which `from_heads` fills
    with a copy of a real row (or zeros) and attention never reads.
    """

    @classmethod
    def full(cls, batch, seq) -> "Packing":
        """Every position is a token: the two layouts differ by a reshape only."""
        packing = cls.__new__(cls)
        packing.batch, packing.seq, packing.token_slots = batch, seq, None
        packing.num_tokens = packing.rows = batch * seq
        packing.padded = False
        return packing

    def __init__(self, mask, pad_rows: bool = False):
        # mask: [batch, seq], 1 for real tokens
        self.batch, self.seq = tf.shape(mask)[0], tf.shape(mask)[1]
        flat = tf.reshape(tf.cast(mask, tf.bool), [-1])  # [batch * seq]
        self.token_slots = tf.cast(tf.where(flat)[:, 0], tf.int32)  # [tokens] slot of each real token
        self.num_tokens = tf.size(self.token_slots)
        self.padded = bool(pad_rows)
        self.rows = padded_rows(self.num_tokens) if pad_rows else self.num_tokens
        # [batch * seq]: the token at each slot, or num_tokens for padding.
        self.slot_tokens = tf.where(flat, tf.cumsum(tf.cast(flat, tf.int32)) - 1, self.num_tokens)
        self._heads = {}  # head count -> `_head_indices`
        self._head_rows = {}  # head count -> `head_rows`

    # The reshapes name every dimension: with an empty batch a -1 cannot be inferred
    # (TensorFlow then guesses from the input's shape and the next MatMul fails).

    def gather_tokens(self, x, token_index):
        """`x[token_index]` for `x` `[rows, d]`; an index past the last token gives some real token's row.

        Laying tokens out padded this way is one gather: padding slots borrow a real
        token instead of a zero row appended to `x`, which would copy `x` on every layer.
        What padding holds never reaches a real token: keys there get
        -10000 added to their scores, whose softmax weight is then exactly 0 in float32,
        and query rows there are dropped by `from_heads`.
        """
        return tf.gather(self._rows_or_zeros(x, 1), tf.minimum(token_index, tf.maximum(self.num_tokens - 1, 0)))

    def pad(self, x):
        """`x` `[tokens, d]` with rows of zeros appended up to `rows` (`x` itself unless `padded`)."""
        return tf.pad(x, [[0, self.rows - tf.shape(x)[0]], [0, 0]]) if self.padded else x

    def unpad(self, x):
        """The tokens' rows of `x` `[rows, d]` (`x` itself unless `padded`)."""
        return x[:self.num_tokens] if self.padded else x

    def _rows_or_zeros(self, rows, count: int):
        # With no real token at all there is nothing to borrow: read `count` rows of zeros.
        return tf.cond(self.num_tokens > 0, lambda: rows, lambda: tf.zeros([count, tf.shape(rows)[-1]], rows.dtype))

    def to_heads(self, x, heads: int):
        """`[rows, heads * d]` -> `[batch, heads, seq, d]`.

        Packed, laying tokens out padded and splitting them into heads are one gather, with
        no transpose (bit-identical); in full, a reshape and a transpose.
        """
        d = tf.shape(x)[-1] // heads
        if self.token_slots is None:
            return tf.transpose(tf.reshape(x, [self.batch, self.seq, heads, d]), [0, 2, 1, 3])
        rows = tf.reshape(x, [tf.shape(x)[0] * heads, d])  # row t * heads + h: token t's head h
        return tf.gather(self._rows_or_zeros(rows, heads), self._head_indices(heads)[0])

    def head_rows(self, heads: int):
        """The rows of `[rows * heads, d]` that `to_heads` gathers, flat (`[batch * heads * seq]`, as
        `[batch, heads, seq]`), with zeros (row 0) appended up to `padded_rows(batch * seq) * heads`: an
        index whose length takes few values, for a compiled kernel that gathers as it writes its output
        (`int8_block.py`). `heads_of` takes the kernel's `[that length, d]` output to `to_heads`' layout.

        Only with `pad_rows`, whose rows are never empty: with no token at all, every position reads
        its head of the first (padding) row, where `to_heads` reads zeros; attention reads neither.
        Computed once per head count, as `to_heads`' index is, for every block of a call."""
        if not self.padded:
            raise ValueError("Packing.head_rows needs rows padded (Packing(mask, pad_rows=True))")
        if heads not in self._head_rows:
            into = tf.reshape(self._head_indices(heads)[0], [-1])
            self._head_rows[heads] = tf.pad(into, [[0, padded_rows(self.batch * self.seq) * heads - tf.size(into)]])
        return self._head_rows[heads]

    def heads_of(self, rows, heads: int):
        """`[batch, heads, seq, d]` from `rows` `[n, d]` gathered by `head_rows` (its first
        `batch * heads * seq` rows: a slice of leading rows, which TensorFlow does not copy)."""
        return tf.reshape(rows[:self.batch * heads * self.seq], [self.batch, heads, self.seq, tf.shape(rows)[-1]])

    def from_heads(self, x, heads: int):
        """`[batch, heads, seq, d]` -> `[rows, heads * d]`: the heads merged and the real tokens
        picked (packed, as one gather, padding rows copying a real token's; in full, a transpose
        and a reshape)."""
        d = tf.shape(x)[-1]
        if self.token_slots is None:
            return tf.reshape(tf.transpose(x, [0, 2, 1, 3]), [self.batch * self.seq, heads * d])
        rows = tf.reshape(x, [self.batch * heads * self.seq, d])
        if self.padded:  # padding rows read row 0, which an empty batch lacks
            rows = self._rows_or_zeros(rows, 1)
        return tf.reshape(tf.gather(rows, self._head_indices(heads)[1]), [self.rows, heads * d])

    def _head_indices(self, heads: int):
        """`(into, back)`, computed once per head count: `into` `[batch, heads, seq]`, the row of
        `to_heads`' `[rows * heads, d]` for each position (padding borrows a real token, as in
        `gather_tokens`); `back` `[rows, heads]`, the row of `[batch * heads * seq, d]` for each
        token, and row 0 for each padding row."""
        if heads not in self._heads:
            token = tf.minimum(self.slot_tokens, tf.maximum(self.num_tokens - 1, 0))  # [batch * seq]
            head = tf.range(heads)
            into = tf.reshape(token, [self.batch, 1, self.seq]) * heads + head[None, :, None]
            row, position = self.token_slots // self.seq, self.token_slots % self.seq
            back = (row[:, None] * heads + head[None, :]) * self.seq + position[:, None]
            back = self.pad(back)
            self._heads[heads] = (into, back)
        return self._heads[heads]
