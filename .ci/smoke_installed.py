"""Run by .ci/install-lowest in a fresh venv: the installed bert_tf (not the checkout) embeds on a tiny
random checkpoint in every CPU precision, and the tokenizer builds."""

import sys
import tempfile
from pathlib import Path

import numpy as np

import bert_tf
from bert_tf import BertEmbedder
from bert_tf.model.config import BertConfig
from bert_tf.runtime import tf
from bert_tf.testing import write_random_checkpoint

assert "site-packages" in bert_tf.__file__, f"the checkout was imported, not the install: {bert_tf.__file__}"
expected = sys.argv[1] if len(sys.argv) > 1 else None
assert expected is None or tf.__version__ == expected, f"TensorFlow {tf.__version__}, expected {expected}"
with tempfile.TemporaryDirectory() as tmp:
    directory = Path(tmp) / "tiny"
    write_random_checkpoint(directory, BertConfig(vocab_size=200, hidden_size=32, num_hidden_layers=2,
                                                  num_attention_heads=4, intermediate_size=64,
                                                  max_position_embeddings=64, type_vocab_size=2), seed=0)
    reference = None
    for precision in ("float32", "bfloat16", "int8"):
        embedder = BertEmbedder.from_checkpoint(directory, precision=precision)
        words = embedder.embed_words(["A mouse is a rodent animal."])[0]
        vectors = np.stack([w.vector for w in words])
        assert [w.text for w in words] == ["a", "mouse", "is", "a", "rodent", "animal", "."], words
        reference = vectors if reference is None else reference
        cosine = (vectors * reference).sum(-1) / np.linalg.norm(vectors, axis=-1) / np.linalg.norm(reference, axis=-1)
        assert cosine.min() > 0.99, (precision, cosine)
        print(f"{precision}: {len(words)} words, cosine to float32 >= {cosine.min():.5f}")
print(f"bert_tf {bert_tf.__version__} on TensorFlow {tf.__version__}: ok")
