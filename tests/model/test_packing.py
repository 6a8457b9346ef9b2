"""`Packing.head_rows` / `heads_of`: attention's layout gathered by a compiled kernel, as `to_heads` lays it out."""

import numpy as np
import pytest

from bert_tf.model.packing import Packing
from bert_tf.model.quantize import padded_rows
from bert_tf.runtime import tf

MASKS = {
    "ragged": [[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]],
    "full": [[1] * 7] * 3,
    "one token": [[1]],
    "a row of padding": [[1, 1, 0], [0, 0, 0]],
    "past 8 slots": [[1] * 9 + [0] * 3] * 2,
    "no tokens": [[0, 0, 0]],
    "empty batch": np.zeros([0, 4], np.int32),
}


@pytest.mark.parametrize("name", sorted(MASKS))
@pytest.mark.parametrize("heads", [1, 3])
def test_head_rows_lay_out_what_to_heads_does(name, heads):
    mask = np.asarray(MASKS[name], np.int32)
    d = 4
    rows = tf.constant(np.random.default_rng(0).standard_normal([64, heads * d]), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])  # shapes unknown while tracing
    def both(m):
        packing = Packing(m, pad_rows=True)
        x = rows[:packing.rows]
        index = packing.head_rows(heads)
        gathered = tf.gather(tf.reshape(x, [-1, d]), index)  # what the kernel writes
        return packing.to_heads(x, heads), packing.heads_of(gathered, heads), index

    expected, got, index = (t.numpy() for t in both(tf.constant(mask)))
    batch, seq = mask.shape
    assert got.shape == expected.shape == (batch, heads, seq, d)
    if mask.sum():
        np.testing.assert_array_equal(got, expected)  # a gather and a slice: the same bits
    else:  # nothing for attention to read: to_heads has zeros, the kernel padding row 0
        np.testing.assert_array_equal(got, np.broadcast_to(rows.numpy()[0].reshape(heads, 1, d), got.shape))
    # The index's length is one of the padded counts (few compiled shapes), and it stays in bounds.
    assert index.shape == (int(padded_rows(batch * seq)) * heads,)
    assert index.min() >= 0 and index.max() < max(int(mask.sum()), 1) * heads


def test_head_rows_needs_padded_rows():
    with pytest.raises(ValueError, match="pad_rows=True"):
        Packing(tf.ones([2, 3]), pad_rows=False).head_rows(2)
