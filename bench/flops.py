"""FLOP counts: the bench's count for engines that run the padded batch, and bert_tf's own.

FLOPs cannot be counted from the outside for data-dependent shapes, so bert_tf's
executed FLOPs come from the library's stated model, `bert_tf.embed.batching.model_flops`
(called in bert_tf's engine processes, which import TensorFlow anyway). The count
here is for the peers, which run every layer on the padded batch, and for the
useful FLOPs of the real lengths; it needs only the config, so the driver and the
ONNX Runtime engines never import TensorFlow.
"""

from __future__ import annotations

from typing import Callable

from bench.context import BERT_BASE


def flops_per_sequence(config: dict, length: int) -> int:
    """Multiply-add FLOPs (2 per MAC) of the encoder on one sequence of `length` tokens.

    Counted: per layer, the Q, K, V and attention-output projections (4 h^2 per token),
    the two feed-forward matmuls (2 h i per token), the attention scores Q K^T and the
    weighted sum of V (h L per token each). Left out as negligible or not matmul work:
    embeddings (lookups), softmax, LayerNorm, GELU, biases, residual adds and the
    pooler (one h x h matmul per sequence). For BERT-Base this is
    169,869,312 L + 36,864 L^2.
    """
    return dense_flops_per_token(config) * length + attention_flops(config, length)


def dense_flops_per_token(config: dict) -> int:
    """The part of `flops_per_sequence` that is per token: the six dense matmuls of every layer."""
    h, i, n = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    return n * 2 * (4 * h * h + 2 * h * i)


def attention_flops(config: dict, length: int) -> int:
    """The part of `flops_per_sequence` that grows with length squared: scores and weighted sum."""
    return config["num_hidden_layers"] * 4 * config["hidden_size"] * length * length


assert flops_per_sequence(BERT_BASE, 1) == 169_869_312 + 36_864
assert flops_per_sequence(BERT_BASE, 100) == 169_869_312 * 100 + 36_864 * 100 ** 2

#: How an engine spends FLOPs on a padded batch of `rows` x `length` holding `real` tokens.
FLOP_MODELS = {
    "padded": "every layer runs on the padded batch (rows x length tokens)",
    "dense_on_real_tokens": "the dense layers run on the real tokens only; attention on the padded batch",
}


def padded_flops(rows: int, length: int, real: int) -> int:
    """What an engine that runs every layer on the padded batch executes (`real` is not used)."""
    return rows * flops_per_sequence(BERT_BASE, length)


def executed_tokens(flop_model: str, rows: int, length: int, real: int) -> int:
    """The tokens the dense layers run on under `flop_model`."""
    return real if flop_model == "dense_on_real_tokens" else rows * length


def bert_tf_flop_model(config) -> tuple[str, Callable[[int, int, int], int]]:
    """bert_tf's FLOP model, read from the library: its name here and the per-call count.

    Whether the dense layers skip padding is what `model_flops` charges for a padded
    row with one real token against a full one; the count itself is the library's
    (it also counts the pooler, one h x h matmul per row, which the peers' count leaves out).
    """
    from bert_tf.embed.batching import model_flops

    padded = model_flops(config, 1, 8, 1) == model_flops(config, 1, 8, 8)
    return ("padded" if padded else "dense_on_real_tokens"), (
        lambda rows, length, real: model_flops(config, rows, length, real))
