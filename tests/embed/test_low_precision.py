"""bfloat16 (and float16) against float32 on the real all-MiniLM-L6-v2: the fidelity bar of the
`precision` option. These run on every CPU: where bfloat16 is not native, oneDNN emulates it and
the numbers are the same kind of rounding, only slower.

The bar (mean cosine >= 0.9995, minimum >= 0.995 for word vectors) is what a user comparing
words by cosine cannot tell from float32: the differences it allows are two orders of magnitude
below the gap between senses that the polysemy test measures.
"""

from pathlib import Path

import numpy as np
import pytest

from bert_tf import BertEmbedder
from bert_tf.cli.demo import SEED_EXPERIMENTS
from bert_tf.cli.similarity import cosine_matrix, pick_words
from bert_tf.model.hardware import onednn_settings
from bert_tf.model.quantize import KERNEL_LEVELS
from bert_tf.testing import assert_float32_close, encoder_bound
from tests.embed.test_semantics import POLYSEMY, cos

pytestmark = pytest.mark.slow

MEAN_BAR, MIN_BAR = 0.9995, 0.995
#: int8 is the lossy mode. On a trained model a few activation channels and tokens are far larger than
#: the rest; with one input range per model call they took most of its 8 bits (0.994 mean / 0.985 min
#: here), and ONNX Runtime's `quantize_dynamic` of this same model (one scale per kernel, one range per
#: call) reaches 0.970 / 0.918 on natural sentences (bench/real_fidelity.py). With a range per token and
#: a scale per kernel column, int8 holds issue 28's bar: minimum word cosine 0.995 (mean 0.999) on TEXTS,
#: whose word vectors are mostly one sentence repeated 40 times; and, with the LayerNorm outputs smoothed
#: (`quantize.py`), the fidelity bar itself on natural sentences (`test_int8_is_faithful_on_natural_sentences`).
#: CPUs without VNNI keep 7-bit kernels (`quantize.KERNEL_LEVELS_NO_VNNI`), which round each weight twice as
#: coarsely; CI runs these tests under ONEDNN_MAX_CPU_ISA=AVX2 too, where the looser bar holds.
INT8_MEAN_BAR, INT8_MIN_BAR = 0.999, 0.995
INT8_7_BIT_MEAN_BAR, INT8_7_BIT_MIN_BAR = 0.997, 0.98

SENSES = Path(__file__).parents[1] / "index" / "data" / "senses.tsv"

TEXTS = [s for _, sentences, _ in SEED_EXPERIMENTS for s in sentences] + [
    s for triple in POLYSEMY.values() for s in triple] + [
    "Unaffable lexicographers disambiguate polysemous words in 2026, don't they?",
    "东京 is the capital of Japan; café au lait costs €3.",
    " ".join(["The long river bank stretched past the old mill and the quiet town."] * 40),  # 560 pieces: windows
]


@pytest.fixture(scope="module")
def embedders(minilm_checkpoint):
    return {p: BertEmbedder.from_checkpoint(minilm_checkpoint, precision=p) for p in ("float32", "bfloat16", "float16")}


@pytest.fixture(scope="module")
def int8_pair(minilm_checkpoint):
    """float32 and int8 only: CI runs the int8 test under ONEDNN_MAX_CPU_ISA=AVX2 too (7-bit kernels),
    where bfloat16 is refused on an AVX-512 CPU."""
    return tuple(BertEmbedder.from_checkpoint(minilm_checkpoint, precision=p) for p in ("float32", "int8"))


def _cosines(a, b):
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def _word_cosines(reference, embedder, label):
    """Cosines of `embedder`'s word vectors on TEXTS with `reference`'s (the same words, float32 out)."""
    ref = reference.embed_words(TEXTS)
    out = embedder.embed_words(TEXTS)
    assert [[w.text for w in ws] for ws in out] == [[w.text for w in ws] for ws in ref]
    a = np.concatenate([np.stack([w.vector for w in ws]) for ws in ref if ws])
    b = np.concatenate([np.stack([w.vector for w in ws]) for ws in out if ws])
    assert b.dtype == np.float32
    assert not np.array_equal(a, b)  # computed in the low precision, not silently in float32
    c = _cosines(a, b)
    print(f"{label} word vectors: cosine to float32 mean {c.mean():.6f} min {c.min():.6f} over {len(c)}")
    return c


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_word_vectors_hold_the_fidelity_bar(embedders, precision):
    c = _word_cosines(embedders["float32"], embedders[precision], precision)
    assert c.mean() >= MEAN_BAR and c.min() >= MIN_BAR


def test_int8_word_vectors_hold_a_minimum_cosine_of_0_995_to_float32(int8_pair):
    c = _word_cosines(*int8_pair, "int8")
    eight_bit = _is_eight_bit(int8_pair[1])
    mean_bar, min_bar = (INT8_MEAN_BAR, INT8_MIN_BAR) if eight_bit else (INT8_7_BIT_MEAN_BAR, INT8_7_BIT_MIN_BAR)
    assert c.mean() >= mean_bar and c.min() >= min_bar, (c.mean(), c.min(), eight_bit)


def _is_eight_bit(embedder) -> bool:
    return all(layer.kernel_levels == KERNEL_LEVELS for block in embedder.encoder.blocks
               for layer in (block.query, block.intermediate, block.output_dense))


def test_int8_is_faithful_on_natural_sentences(int8_pair):
    """The 290 natural sentences of tests/index/data/senses.tsv, every token's sum of the last four
    layers (the bench's real-model fidelity, bench/real_fidelity.py), 32 texts per call: int8 holds
    the fidelity bar that bfloat16 holds (measured: mean 0.99960, min 0.99864; 7-bit kernels 0.99889,
    0.99359; before the smoothing, mean 0.99950 and min 0.99857)."""
    with open(SENSES, encoding="utf-8") as f:
        texts = [line.rstrip("\n").split("\t")[-1] for line in f][1:]
    assert len(texts) == 290
    vectors = []
    for embedder in int8_pair:
        states = [s.states[-4:].sum(axis=0) for start in range(0, len(texts), 32)
                  for s in embedder.token_states(texts[start:start + 32])]
        vectors.append(np.concatenate(states))
    c = _cosines(*vectors)
    print(f"int8 natural sentences: cosine to float32 mean {c.mean():.6f} min {c.min():.6f} over {len(c)} tokens")
    eight_bit = _is_eight_bit(int8_pair[1])
    mean_bar, min_bar = (MEAN_BAR, MIN_BAR) if eight_bit else (INT8_7_BIT_MEAN_BAR, INT8_7_BIT_MIN_BAR)
    assert c.mean() >= mean_bar and c.min() >= min_bar, (c.mean(), c.min(), eight_bit)


@pytest.mark.skipif(not onednn_settings()[0], reason=(
    "TF_ENABLE_ONEDNN_OPTS=0: TensorFlow's own float32 kernels (attention's matmuls) round by the batch's "
    "shape, and int8 rounding amplifies that: measured 0.15 at most, as before the compiled kernels"))
def test_int8_vectors_on_the_real_model_are_the_same_alone_and_in_a_batch(int8_pair):
    """A trained model's int8 word vectors do not depend on the batch: 40 natural sentences alone and
    among 250 others (each call padded to another row count, so other compiled kernels) agree to the
    float32 bound. (Measured: identical. With the compiled LayerNorms summing in float32, whose order
    XLA picks by the whole input's shape, 59% of the words moved past the bound, by up to 0.14.)"""
    _assert_the_same_alone_and_in_a_batch(int8_pair[1])


def _assert_the_same_alone_and_in_a_batch(embedder):
    """The first 40 of the 290 natural sentences, alone and among all of them, to the float32 bound."""
    with open(SENSES, encoding="utf-8") as f:
        texts = [line.rstrip("\n").split("\t")[-1] for line in f][1:]
    batch = embedder.embed_words(texts)
    for text, in_batch in zip(texts[:40], batch):
        alone = np.stack([w.vector for w in embedder.embed_words([text])[0]])
        assert_float32_close(np.stack([w.vector for w in in_batch]), alone, encoder_bound(embedder.config, alone),
                             f"{embedder.precision} alone vs in a batch: {text!r}")


@pytest.mark.parametrize("strategy", ["mean", "cls", "pooled", "max"])
def test_sentence_vectors_hold_the_fidelity_bar(embedders, strategy):
    a = embedders["float32"].sentence_vectors(TEXTS, sentence_strategy=strategy)
    b = embedders["bfloat16"].sentence_vectors(TEXTS, sentence_strategy=strategy)
    assert b.dtype == np.float32 and b.shape == a.shape
    c = _cosines(a, b)
    assert c.mean() >= MEAN_BAR and c.min() >= MIN_BAR, (strategy, c.mean(), c.min())


def test_token_states_hold_the_fidelity_bar(embedders):
    ref = embedders["float32"].token_states(TEXTS[:12])
    out = embedders["bfloat16"].token_states(TEXTS[:12])
    for r, o in zip(ref, out):
        assert o.states.dtype == np.float32 and o.states.shape == r.states.shape
        assert o.pieces == r.pieces
        # The embedding output is float32 arithmetic in both (the lookups and LayerNorm).
        np.testing.assert_array_equal(o.states[0], r.states[0])
        c = _cosines(r.states[1:], o.states[1:])  # every layer, every token
        assert c.mean() >= MEAN_BAR and c.min() >= MIN_BAR, (c.mean(), c.min())


def test_the_polysemy_result_is_unchanged(embedders):
    sentences = [s for triple in POLYSEMY.values() for s in triple]
    wins = {}
    for precision in ("float32", "bfloat16"):
        results = embedders[precision].embed_words(sentences)
        emb = [{w.text: w.vector for w in reversed(ws)} for ws in results]
        wins[precision] = [cos(emb[3 * k][w], emb[3 * k + 1][w]) > max(cos(emb[3 * k][w], emb[3 * k + 2][w]),
                                                                       cos(emb[3 * k + 1][w], emb[3 * k + 2][w]))
                           for k, w in enumerate(POLYSEMY)]
    assert wins["bfloat16"] == wins["float32"]


@pytest.mark.parametrize("name, sentences, targets", SEED_EXPERIMENTS, ids=[e[0] for e in SEED_EXPERIMENTS])
def test_the_seed_experiment_table_is_within_a_hundredth(embedders, name, sentences, targets):
    tables = {}
    for precision in ("float32", "bfloat16"):
        results = embedders[precision].embed_words(sentences)
        picked = pick_words([{w.text: w.vector for w in reversed(ws)} for ws in results], targets)
        tables[precision] = cosine_matrix([p.vector for p in picked])
    assert np.abs(tables["bfloat16"] - tables["float32"]).max() <= 0.01


@pytest.fixture(scope="module")
def litert_pair(minilm_checkpoint, tmp_path_factory):
    """float32 and int8-litert, the converted model kept in a folder of this module's."""
    from bert_tf.model import litert

    if litert.available():
        pytest.skip(litert.available())
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
        return tuple(BertEmbedder.from_checkpoint(minilm_checkpoint, precision=p) for p in ("float32", "int8-litert"))


def test_int8_litert_holds_the_int8_bar_on_words_and_on_natural_sentences(litert_pair):
    """int8 run by LiteRT (`bert_tf.model.litert`): every kernel column and every token's input rounded on
    its own, as in int8, by XNNPACK's kernels and without the LayerNorm smoothing. Measured on this model:
    TEXTS' words mean 0.99946, min 0.99547; the 290 natural sentences' tokens mean 0.99958, min 0.99846
    (int8: 0.99960, 0.99864; recipe 1, before `norm.divided`: 0.99942 / 0.99545 and 0.99951 / 0.99826). It
    holds int8's bar on both; on natural sentences its mean sits just above the fidelity bar itself, too
    close to assert across CPUs."""
    c = _word_cosines(*litert_pair, "int8-litert")
    assert c.mean() >= INT8_MEAN_BAR and c.min() >= INT8_MIN_BAR, (c.mean(), c.min())
    with open(SENSES, encoding="utf-8") as f:
        texts = [line.rstrip("\n").split("\t")[-1] for line in f][1:]
    vectors = [np.concatenate([s.states[-4:].sum(axis=0) for start in range(0, len(texts), 32)
                               for s in embedder.token_states(texts[start:start + 32])]) for embedder in litert_pair]
    c = _cosines(*vectors)
    print(f"int8-litert natural sentences: cosine to float32 mean {c.mean():.6f} min {c.min():.6f} over {len(c)}")
    assert c.mean() >= INT8_MEAN_BAR and c.min() >= INT8_MIN_BAR, (c.mean(), c.min())


def test_int8_litert_vectors_on_the_real_model_are_the_same_alone_and_in_a_batch(litert_pair):
    """40 natural sentences alone and among 250 others agree to the float32 bound, as int8's do: each
    token's input is rounded over its own range. (Not always bit for bit: a longer padded row changes how
    attention's float32 sums are grouped, and a last-bit difference can move an input across a rounding
    level. On tiny models they are identical: tests/model/test_litert.py.)"""
    _assert_the_same_alone_and_in_a_batch(litert_pair[1])
