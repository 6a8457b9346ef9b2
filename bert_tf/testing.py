"""Building BERT checkpoints in Google's exact layout, with random weights.

Used by the tests (tiny configs) and by the benchmark (BERT-Base shape). The
variable names and shapes come from `checkpoint.google_variable_shapes`, the
same table the loader uses; the file also carries the extra tensors Google's
released zips hold (`cls/*`, `global_step`), so the loader's ignore list is
exercised too.

It also holds the one rule by which every numerical comparison in the tests
and the benchmark is judged: `float32_bound` and `assert_float32_close`.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from bert_tf.model.config import BertConfig
from bert_tf.model.tf1_format import CHECKPOINT_PREFIX, save_tf1_checkpoint

#: A small vocabulary that is enough to tokenize ordinary English into pieces.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab(size: int) -> list[str]:
    """A deterministic vocabulary of `size` entries: specials, ASCII characters, `##` suffixes, words."""
    chars = [chr(c) for c in range(33, 127)]
    lower = [c for c in chars if not c.isupper()]
    words = ["the", "a", "is", "mouse", "rat", "animal", "computer", "device", "keyboard",
             "bank", "river", "money", "lean", "steak", "tower", "cat"]
    vocab = list(dict.fromkeys(SPECIAL_TOKENS + lower + ["##" + c for c in lower if c.isalnum()] + words))
    i = 0
    while len(vocab) < size:
        vocab.append(f"[unused{i}]")
        i += 1
    return vocab[:size]


def random_weights(config: BertConfig, *, seed: int = 0, std: float | None = None) -> dict[str, np.ndarray]:
    """Random float32 weights for every variable Google's BERT checkpoints hold.

    LayerNorm gammas are drawn around 1 so the network stays well-conditioned.
    """
    from bert_tf.model.checkpoint import google_variable_shapes

    rng = np.random.default_rng(seed)
    std = config.initializer_range if std is None else std
    out = {}
    for name, shape in google_variable_shapes(config).items():
        if name.endswith("/gamma"):
            value = 1.0 + 0.1 * rng.standard_normal(shape)
        elif name.endswith(("/bias", "/beta")):
            value = 0.1 * rng.standard_normal(shape)
        else:
            value = std * rng.standard_normal(shape)
        out[name] = value.astype(np.float32)
    return out


def write_random_checkpoint(directory: str | os.PathLike, config: BertConfig, *, seed: int = 0,
                            vocab: Sequence[str] | None = None, std: float | None = None,
                            extras: bool = True) -> dict[str, np.ndarray]:
    """Writes a complete Google-layout checkpoint directory with random weights.

    Args:
        directory: created if missing; receives `bert_config.json`, `vocab.txt`,
            `bert_model.ckpt.index` and `bert_model.ckpt.data-00000-of-00001`.
        config: the model shape.
        seed: for the weights.
        vocab: the vocabulary; default `tiny_vocab(config.vocab_size)`.
        std: weight scale; default `config.initializer_range`.
        extras: also write `cls/predictions/*`, `cls/seq_relationship/*` and
            `global_step`, as Google's released checkpoints do.

    Returns:
        The BERT weights written, by TF1 name (without the extras).
    """
    os.makedirs(directory, exist_ok=True)
    vocab = list(vocab) if vocab is not None else tiny_vocab(config.vocab_size)
    if len(vocab) != config.vocab_size:
        raise ValueError(f"vocab has {len(vocab)} entries but config.vocab_size is {config.vocab_size}")
    weights = random_weights(config, seed=seed, std=std)
    tensors = dict(weights)
    if extras:
        h, v = config.hidden_size, config.vocab_size
        rng = np.random.default_rng(seed + 1)
        tensors.update({
            "cls/predictions/output_bias": np.zeros([v], np.float32),
            "cls/predictions/transform/dense/kernel": rng.standard_normal([h, h]).astype(np.float32),
            "cls/predictions/transform/dense/bias": np.zeros([h], np.float32),
            "cls/predictions/transform/LayerNorm/gamma": np.ones([h], np.float32),
            "cls/predictions/transform/LayerNorm/beta": np.zeros([h], np.float32),
            "cls/seq_relationship/output_weights": rng.standard_normal([2, h]).astype(np.float32),
            "cls/seq_relationship/output_bias": np.zeros([2], np.float32),
            "global_step": np.array(1000, np.int64),
        })
    config.to_json_file(os.path.join(directory, "bert_config.json"))
    with open(os.path.join(directory, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab) + "\n")
    save_tf1_checkpoint(os.path.join(directory, CHECKPOINT_PREFIX), tensors)
    return weights


def google_to_hf_weights(weights: dict[str, np.ndarray], num_layers: int) -> dict[str, np.ndarray]:
    """Google TF1 names to Hugging Face `BertModel` parameter names, as contiguous numpy arrays.

    The reference side of the parity tests and the benchmark's peers. It is written
    out independently of `bert_tf.model.convert` (which maps the other way, HF to Google)
    so that the two cannot share a mistake. Dense kernels are transposed: Google
    stores `[in, out]`, `torch.nn.Linear` holds `[out, in]`.
    """
    sd = {
        "embeddings.word_embeddings.weight": weights["bert/embeddings/word_embeddings"],
        "embeddings.position_embeddings.weight": weights["bert/embeddings/position_embeddings"],
        "embeddings.token_type_embeddings.weight": weights["bert/embeddings/token_type_embeddings"],
        "embeddings.LayerNorm.weight": weights["bert/embeddings/LayerNorm/gamma"],
        "embeddings.LayerNorm.bias": weights["bert/embeddings/LayerNorm/beta"],
        "pooler.dense.weight": weights["bert/pooler/dense/kernel"].T,
        "pooler.dense.bias": weights["bert/pooler/dense/bias"],
    }
    dense = [("attention.self.query", "attention/self/query"), ("attention.self.key", "attention/self/key"),
             ("attention.self.value", "attention/self/value"),
             ("attention.output.dense", "attention/output/dense"),
             ("intermediate.dense", "intermediate/dense"), ("output.dense", "output/dense")]
    norms = [("attention.output.LayerNorm", "attention/output/LayerNorm"), ("output.LayerNorm", "output/LayerNorm")]
    for n in range(num_layers):
        g = f"bert/encoder/layer_{n}/"
        for hf_scope, g_scope in dense:
            sd[f"encoder.layer.{n}.{hf_scope}.weight"] = weights[g + g_scope + "/kernel"].T
            sd[f"encoder.layer.{n}.{hf_scope}.bias"] = weights[g + g_scope + "/bias"]
        for hf_scope, g_scope in norms:
            sd[f"encoder.layer.{n}.{hf_scope}.weight"] = weights[g + g_scope + "/gamma"]
            sd[f"encoder.layer.{n}.{hf_scope}.bias"] = weights[g + g_scope + "/beta"]
    return {k: np.ascontiguousarray(v) for k, v in sd.items()}


# ---------------------------------------------------------------------- float32 rounding

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 2**-23: the spacing of float32 numbers just above 1

#: (observed difference / bound, what was compared) of every `assert_float32_close` in this process:
#: the test session prints the worst, so the margin left on the CPU at hand is visible.
MARGINS: list[tuple[float, str]] = []


def float32_bound(reference, *, depth: int, width: int) -> float:
    """The largest absolute difference two correct float32 computations of `reference` may show.

    Two float32 evaluations of the same network differ by rounding alone when they sum
    in different orders: oneDNN's AVX-512 kernels choose the order by the number of rows
    in a matmul (so a text alone and in a batch differ), AVX2 kernels differ from those,
    and another library (the Hugging Face reference) differs again. Rounding, not any
    one machine's output, sets the bound:

    - a dot product of length K rounds K times; the errors are independent and of
      either sign, so they grow like sqrt(K) * eps times the magnitude of the result
      (the probabilistic bound of Higham and Mary, 2019, rather than the worst case K * eps,
      which two real summation orders never approach);
    - a transformer layer has such dot products in sequence, and every layer ends in a
      LayerNorm that passes its input's relative error on to its output: the relative
      errors of `depth` stages add up;
    - the result is compared on the scale of its largest component, `max |reference|`:
      LayerNorm and the residual stream make each component's error depend on the whole
      vector, not on the component's own size.

    So the bound is `depth * sqrt(width) * eps * max |reference|`. For all-MiniLM-L6-v2
    (depth 7: embeddings and six layers; width 1536) that is 275 float32 spacings of the
    largest component. A real mistake is orders of magnitude past it: the tanh GELU in
    place of the erf one, a window off by one piece, a mask that is ignored (the tests
    show each).

    Args:
        reference: the array the other is compared with (its magnitude sets the scale).
        depth: how many rounding stages lie between the inputs and the values compared;
            for an encoder's outputs, its number of layers plus one for the embeddings.
        width: the longest sum in a stage (an encoder's intermediate size).

    Returns:
        The absolute tolerance.
    """
    if depth < 1 or width < 1:
        raise ValueError(f"depth and width must be positive; got depth={depth}, width={width}")
    scale = float(np.max(np.abs(reference))) if np.size(reference) else 0.0
    return depth * math.sqrt(width) * FLOAT32_EPS * max(scale, FLOAT32_EPS)


def encoder_bound(config: BertConfig, reference) -> float:
    """`float32_bound` for values computed by an encoder of this shape (every layer, the widest sum)."""
    return float32_bound(reference, depth=config.num_hidden_layers + 1,
                         width=max(config.hidden_size, config.intermediate_size))


def assert_float32_close(actual, reference, bound: float, what: str = "") -> float:
    """Asserts `max |actual - reference| <= bound` (shapes equal, both finite); returns the difference.

    The ratio of difference to bound is recorded in `MARGINS`.
    """
    actual = np.asarray(actual, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if actual.shape != reference.shape:
        raise AssertionError(f"{what}: shapes differ, {actual.shape} vs {reference.shape}")
    if not (np.all(np.isfinite(actual)) and np.all(np.isfinite(reference))):
        raise AssertionError(f"{what}: not finite")
    diff = float(np.max(np.abs(actual - reference))) if actual.size else 0.0
    MARGINS.append((diff / bound if bound > 0 else math.inf if diff else 0.0, what))
    if not diff <= bound:
        raise AssertionError(f"{what}: max abs difference {diff:.3g} exceeds the float32 rounding bound "
                             f"{bound:.3g} ({diff / bound:.1f}x)")
    return diff
