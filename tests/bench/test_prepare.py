"""bench's `ort_budget` runs ONNX Runtime on bert_tf's own batches: the plan the prepare step writes must be
the one `BertEmbedder` runs, or the comparison measures a different batching."""

import numpy as np

from bench.prepare import bert_tf_batches
from bert_tf import BertEmbedder
from bert_tf.testing import tiny_vocab


def test_the_bench_plan_is_the_calls_bert_tf_makes(make_checkpoint):
    directory, _ = make_checkpoint("uncased_L-2_H-32_A-4")
    words = [w for w in tiny_vocab(200) if w.isalpha() and w.islower()]
    rng = np.random.default_rng(3)
    texts = [" ".join(rng.choice(words, size=int(k))) for k in rng.integers(1, 60, size=90)]
    embedder = BertEmbedder.from_checkpoint(directory)
    lengths = [2 + sum(len(w.ids) for w in ws) for ws in embedder.tokenizer.tokenize_words(texts)]
    assert max(lengths) <= 64  # no text is windowed (the bench's workload is not)
    for batch_size in (None, 7):
        calls = []
        embedder.on_call = lambda call: calls.append((call.rows, call.real_tokens))
        embedder.embed_words(texts, batch_size=batch_size, progress=False)
        batches = bert_tf_batches(lengths, batch_size, 64)
        assert len(batches) > 2
        assert sorted(k for batch in batches for k in batch) == list(range(len(texts)))
        assert [(len(b), sum(lengths[k] for k in b)) for b in batches] == calls
        assert all(lengths[a] <= lengths[b] for a, b in zip(sum(batches, []), sum(batches, [])[1:]))
