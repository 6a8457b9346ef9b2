"""The Keras encoder against Hugging Face `transformers.BertModel`, an independent implementation."""

import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf.model.checkpoint import load_encoder
from bert_tf.model.encoder import hidden_states
from bert_tf.testing import assert_float32_close, encoder_bound, float32_bound
from tests.conftest import hf_model_from_google, random_batch, tiny_config

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.numerics


def hf_hidden_states(model, batch):
    with torch.inference_mode():
        out = model(input_ids=torch.from_numpy(batch["input_word_ids"]).long(),
                    attention_mask=torch.from_numpy(batch["input_mask"]).long(),
                    token_type_ids=torch.from_numpy(batch["input_type_ids"]).long(),
                    output_hidden_states=True)
    return np.stack([h.numpy() for h in out.hidden_states]), out.pooler_output.numpy()


def max_diff_on_real_tokens(ours, theirs, mask):
    real = mask.astype(bool)
    return max(float(np.abs(o[real] - t[real]).max()) for o, t in zip(ours, theirs))


def assert_same_on_real_tokens(config, ours, theirs, mask, what):
    """Every hidden state equal to float32 rounding (`bert_tf.testing.float32_bound`) where the mask is 1."""
    real = mask.astype(bool)
    return assert_float32_close(ours[:, real], theirs[:, real], encoder_bound(config, theirs[:, real]), what)


def assert_same(config, ours, reference, what):
    reference = np.asarray(reference)
    return assert_float32_close(ours, reference, encoder_bound(config, reference), what)


def write_checkpoint_tf1_style(directory, config, seed):
    """Writes a checkpoint the way Google's TF1 code does: variables created with
    `tf.compat.v1.get_variable` under their scopes, saved by `tf.compat.v1.train.Saver`.
    Independent of bert_tf's own writer and converter."""
    from bert_tf.model.checkpoint import google_variable_shapes

    rng = np.random.default_rng(seed)
    weights = {}
    graph = tf.Graph()
    with graph.as_default():
        variables = []
        for name, shape in google_variable_shapes(config).items():
            scale = 1.0 if name.endswith("gamma") else 0.0
            value = (scale + 0.05 * rng.standard_normal(shape)).astype(np.float32)
            weights[name] = value
            variables.append(tf.compat.v1.get_variable(name, initializer=value))
        tf.compat.v1.train.get_or_create_global_step()
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(directory / "bert_model.ckpt"), write_meta_graph=False)
    config.to_json_file(directory / "bert_config.json")
    (directory / "vocab.txt").write_text("\n".join(f"t{i}" for i in range(config.vocab_size)) + "\n")
    return weights


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(hidden_size=48, num_attention_heads=3, num_hidden_layers=1, intermediate_size=96),
    dict(hidden_size=64, num_attention_heads=8, num_hidden_layers=3, type_vocab_size=4),
    dict(hidden_size=16, num_attention_heads=1, num_hidden_layers=4, intermediate_size=20,
         type_vocab_size=1),
    dict(hidden_act="gelu_new"),
])
def test_google_format_checkpoint_matches_hugging_face(tmp_path, overrides):
    config = tiny_config(**overrides)
    weights = write_checkpoint_tf1_style(tmp_path, config, seed=len(overrides))
    _, encoder = load_encoder(tmp_path)
    batch = random_batch(config, [7, 12, 3, 1], seed=1)
    ours = encoder(batch)
    theirs, pooled = hf_hidden_states(hf_model_from_google(config, weights), batch)
    assert_same_on_real_tokens(config, hidden_states(ours).numpy(), theirs, batch["input_mask"],
                               f"hidden states vs Hugging Face, {overrides}")
    assert_same(config, ours["pooled_output"].numpy(), pooled, f"pooled output vs Hugging Face, {overrides}")
    assert len(ours["encoder_outputs"]) == config.num_hidden_layers


def test_real_weights_match_hugging_face(minilm_checkpoint, hf_minilm, minilm_hf_dir):
    """all-MiniLM-L6-v2: HF on the original safetensors vs. us on the converted Google checkpoint."""
    from transformers import BertTokenizer

    tokenizer = BertTokenizer(str(minilm_hf_dir / "vocab.txt"))
    sentences = ["A mouse is a rodent animal.",
                 "The man went fishing by the bank of the river, where it was quiet for hours.",
                 "Hi", "Naïve café owners in Zürich don't serve crème brûlée on Mondays!"]
    enc = tokenizer(sentences, padding=True, return_tensors="np")
    batch = {"input_word_ids": enc["input_ids"].astype(np.int32),
             "input_mask": enc["attention_mask"].astype(np.int32),
             "input_type_ids": enc["token_type_ids"].astype(np.int32)}
    config, encoder = load_encoder(minilm_checkpoint)
    ours = encoder(batch)
    theirs, pooled = hf_hidden_states(hf_minilm, batch)
    diff = assert_same_on_real_tokens(config, hidden_states(ours).numpy(), theirs, batch["input_mask"],
                                      "all-MiniLM-L6-v2 hidden states vs Hugging Face")
    print(f"all-MiniLM-L6-v2 hidden states, max abs diff vs transformers: {diff:.2e}")
    assert_same(config, ours["pooled_output"].numpy(), pooled, "all-MiniLM-L6-v2 pooled output vs Hugging Face")


def test_erf_gelu_is_the_right_default_for_real_weights(minilm_checkpoint, hf_minilm):
    """The released configs say "gelu"; only the exact erf form reproduces the reference: it is within
    float32 rounding, the tanh approximation an order of magnitude past it."""
    from bert_tf.model.layers import gelu_tanh

    config, encoder = load_encoder(minilm_checkpoint)
    batch = random_batch(config, [20, 9], seed=3)
    theirs, _ = hf_hidden_states(hf_minilm, batch)
    bound = encoder_bound(config, theirs[:, batch["input_mask"].astype(bool)])
    erf = max_diff_on_real_tokens(hidden_states(encoder(batch)).numpy(), theirs, batch["input_mask"])
    for block in encoder.blocks:
        block.activation = gelu_tanh
    tanh = max_diff_on_real_tokens(hidden_states(encoder(batch)).numpy(), theirs, batch["input_mask"])
    assert erf <= bound and tanh > 10 * bound, (erf, tanh, bound)


def test_one_traced_graph_serves_every_batch_and_length(make_checkpoint):
    directory, _ = make_checkpoint()
    config, encoder = load_encoder(directory)
    spec = {k: tf.TensorSpec([None, None], tf.int32)
            for k in ("input_word_ids", "input_mask", "input_type_ids")}
    run = tf.function(lambda inputs: encoder(inputs), input_signature=[spec])
    for lengths in ([3], [5, 9, 2], [64] * 4, [1, 1]):
        batch = random_batch(config, lengths)
        assert_same(config, run(batch)["sequence_output"].numpy(), encoder(batch)["sequence_output"].numpy(),
                    f"traced vs eager, lengths {lengths}")
    assert run.experimental_get_tracing_count() == 1


def test_padding_does_not_change_real_positions(make_checkpoint):
    directory, _ = make_checkpoint()
    config, encoder = load_encoder(directory)
    alone = random_batch(config, [6], seed=4)
    padded = {k: np.pad(v, [(0, 0), (0, 20)]) for k, v in alone.items()}
    a = hidden_states(encoder(alone)).numpy()
    b = hidden_states(encoder(padded)).numpy()[:, :, :6]
    assert_same(config, b, a, "alone vs padded by 20")


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_packed_token_states_equal_the_padded_model(make_checkpoint, dtype):
    """`token_states` skips padding in the dense layers; the numbers must not change. (int8: both
    compiled blocks, on the tokens' rows padded to another count.)"""
    directory, _ = make_checkpoint(num_hidden_layers=3)
    config, encoder = load_encoder(directory, compute_dtype=dtype)
    batch = random_batch(config, [9, 1, 30, 4], seed=5)
    batch["input_type_ids"][:] = 0  # token_states takes type 0, as the embedder feeds it
    padded = encoder(batch)
    states, pooled = encoder.token_states(tf.constant(batch["input_word_ids"]), tf.constant(batch["input_mask"]))
    real = batch["input_mask"].astype(bool)
    expected = [padded["embedding_output"], *padded["encoder_outputs"]]
    assert len(states) == config.num_hidden_layers + 1
    for ours, reference in zip(states, expected):
        assert ours.shape == (real.sum(), config.hidden_size)
        assert_same(config, ours.numpy(), reference.numpy()[real], "packed vs padded token states")
    assert_same(config, pooled.numpy(), padded["pooled_output"].numpy(), "packed vs padded pooled output")


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_rows_without_tokens_neither_crash_nor_change_the_others(make_checkpoint, dtype):
    """An all-padding row has no [CLS]: its pooled output is zeros, and the other rows are
    what they are alone, to float32 rounding (padding slots borrow real tokens but never reach them)."""
    directory, _ = make_checkpoint(num_hidden_layers=2)
    config, encoder = load_encoder(directory, compute_dtype=dtype)
    states = tf.function(encoder.token_states, input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
    batch = random_batch(config, [7, 3], seed=6)
    ids, mask = batch["input_word_ids"], batch["input_mask"]
    alone, alone_pooled = states(ids, mask)
    with_empty_row, pooled = states(np.insert(ids, 1, 0, axis=0), np.insert(mask, 1, 0, axis=0))
    for a, b in zip(alone, with_empty_row, strict=True):
        assert_same(config, b.numpy(), a.numpy(), "with an empty row vs without")
    np.testing.assert_array_equal(pooled.numpy()[1], 0.0)
    assert_same(config, pooled.numpy()[[0, 2]], alone_pooled.numpy(), "pooled, with an empty row vs without")
    nothing, pooled = states(np.zeros((3, 8), np.int32), np.zeros((3, 8), np.int32))
    assert [s.shape for s in nothing] == [(0, config.hidden_size)] * (config.num_hidden_layers + 1)
    np.testing.assert_array_equal(pooled.numpy(), np.zeros((3, config.hidden_size)))


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_an_empty_batch_gives_empty_outputs_in_the_traced_graph(make_checkpoint, dtype):
    """Zero rows (a serving request with no sentences, the tail of a chunked stream) must give
    empty outputs of the right shapes, not a shape error from inside the graph."""
    directory, _ = make_checkpoint(num_hidden_layers=2)
    config, encoder = load_encoder(directory, compute_dtype=dtype)
    spec = {k: tf.TensorSpec([None, None], tf.int32) for k in ("input_word_ids", "input_mask", "input_type_ids")}
    run = tf.function(lambda inputs: encoder(inputs), input_signature=[spec])
    states = tf.function(encoder.token_states, input_signature=[tf.TensorSpec([None, None], tf.int32)] * 2)
    h = config.hidden_size
    for seq in (8, 1):
        empty = {k: np.zeros([0, seq], np.int32) for k in spec}
        out = run(empty)
        assert out["sequence_output"].shape == (0, seq, h)
        assert all(layer.shape == (0, seq, h) for layer in out["encoder_outputs"])
        assert out["pooled_output"].shape == (0, h)
        token_states, pooled = states(empty["input_word_ids"], empty["input_mask"])
        assert [s.shape for s in token_states] == [(0, h)] * (config.num_hidden_layers + 1)
        assert pooled.shape == (0, h)


def _optimized_op_counts(function, *args) -> dict:
    """Op types of `function`'s graph after TensorFlow's graph optimiser, as it runs on `args`."""
    from collections import Counter

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    frozen = convert_variables_to_constants_v2(function.get_concrete_function())
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(frozen.graph.as_graph_def(), name="")
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run([t.name for t in frozen.outputs], dict(zip([t.name for t in frozen.inputs], args)),
                    options=tf.compat.v1.RunOptions(output_partition_graphs=True), run_metadata=metadata)
    nodes = [node for part in metadata.partition_graphs for node in part.node]
    fused = ["+".join([node.op, *(op.decode() for op in node.attr["fused_ops"].list.s)])
             for node in nodes if node.attr["fused_ops"].list.s]
    return Counter([node.op for node in nodes] + fused)  # fused kernels also as "Op+Fused+Ops"


def _onednn_enabled() -> bool:
    from tensorflow.python.util import _pywrap_util_port

    return _pywrap_util_port.IsMklEnabled()


def _optimized_op_counts_of_both_forwards(make_checkpoint, layers: int, compute_dtype: str = "float32"):
    """`(config, [op counts of the unpadded forward, of the padded forward])` on a small batch."""
    directory, _ = make_checkpoint(num_hidden_layers=layers)
    config, encoder = load_encoder(directory, compute_dtype=compute_dtype)
    batch = random_batch(config, [7, 3], seed=6)
    ids = tf.TensorSpec([None, None], tf.int32)
    unpadded = tf.function(encoder.token_states, input_signature=[ids, ids])
    padded = tf.function(lambda i, m: encoder({"input_word_ids": i, "input_mask": m, "input_type_ids": tf.zeros_like(i)}),
                         input_signature=[ids, ids])
    return config, [_optimized_op_counts(function, batch["input_word_ids"], batch["input_mask"])
                    for function in (unpadded, padded)]


@pytest.mark.skipif(not _onednn_enabled(), reason="the fusion is oneDNN's (TF_ENABLE_ONEDNN_OPTS=0 here)")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_attention_scale_and_mask_fuse_into_the_score_matmul(make_checkpoint, dtype):
    """scores * scale + mask must reach oneDNN as one fused batch matmul per layer, in the padded
    and in the unpadded forward, in float32 and bfloat16; it only fuses when the mask's [batch, 1, 1, seq]
    shape is statically known (see `attention_adder_for`), and otherwise costs two extra passes over the
    scores (in bfloat16, TensorFlow's slow elementwise kernels: 1.1x the score step's time)."""
    from bert_tf.model.onednn import fixed_weights_available

    if not fixed_weights_available(dtype):
        pytest.skip(f"oneDNN does not run {dtype} matmuls on this CPU")
    config, forwards = _optimized_op_counts_of_both_forwards(make_checkpoint, layers=2, compute_dtype=dtype)
    for ops in forwards:
        assert ops["_MklFusedBatchMatMulV2+Mul+Add"] == config.num_hidden_layers, dict(ops)


@pytest.mark.skipif(not _onednn_enabled(), reason="the fusion is oneDNN's (TF_ENABLE_ONEDNN_OPTS=0 here)")
def test_both_residual_adds_fuse_into_their_matmuls(make_checkpoint):
    """x + dense(...) must run inside the dense layer's matmul kernel, for the attention output and the
    feed-forward output of every layer, in both forwards: the attention one only fuses when the optimiser
    can prove the context's shape equal to x's (`TransformerBlock._call_tokens`), and otherwise costs a
    separate pass over [tokens, hidden] per layer."""
    config, forwards = _optimized_op_counts_of_both_forwards(make_checkpoint, layers=3)
    for ops in forwards:
        assert ops["_MklNativeFusedMatMul+BiasAdd+Add"] == 2 * config.num_hidden_layers, dict(ops)


def test_layer_norm_matches_float64_on_bert_like_activations():
    """Mean subtracted first, biased variance, epsilon inside the root, gamma and beta per feature:
    checked against float64 on activations with an offset and outlier features, as BERT's have."""
    from bert_tf.model.layers import LayerNorm

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((64, 768)) * 2 + 30).astype(np.float32)
    x[:, :3] += 50
    gamma, beta = rng.uniform(0.5, 1.5, 768).astype(np.float32), rng.standard_normal(768).astype(np.float32)
    norm = LayerNorm(epsilon=1e-12)
    norm.build((None, 768))
    norm.gamma.assign(gamma)
    norm.beta.assign(beta)
    exact = x.astype(np.float64)
    centred = exact - exact.mean(axis=-1, keepdims=True)
    expected = centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + 1e-12) * gamma + beta
    bound = float32_bound(expected, depth=1, width=768)  # one stage: the mean and variance sums
    assert_float32_close(norm(x).numpy(), expected, bound, "LayerNorm vs float64")
    assert_float32_close(norm(x[None]).numpy()[0], expected, bound, "LayerNorm, any leading shape")
    for unsupported in (dict(axis=1), dict(center=False), dict(scale=False)):
        with pytest.raises(ValueError, match="last axis with gamma and beta"):
            LayerNorm(**unsupported)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fixed_weights_keep_oneDNNs_kernels_and_compute_the_same(make_checkpoint, dtype):
    """`token_states(..., fixed_weights=True)` (the embedder's graphs) runs every dense layer as oneDNN's fused
    matmul told that its kernel does not change, so the reordered kernel is kept between calls (a short
    query about 1.5x faster), with both residual adds still fused; its states are those of the graph without
    it: to float32 rounding in float32, within one bfloat16 rounding of the output's size in bfloat16."""
    from bert_tf.model import onednn

    if not onednn.fixed_weights_available(dtype):
        pytest.skip(f"oneDNN's fused {dtype} matmul is not used here (TF_ENABLE_ONEDNN_OPTS=0, or no AVX-512)")
    directory, _ = make_checkpoint(num_hidden_layers=3)
    config, encoder = load_encoder(directory, compute_dtype=dtype)
    batch = random_batch(config, [9, 1, 30, 4], seed=5)
    ids = tf.TensorSpec([None, None], tf.int32)
    plain = tf.function(encoder.token_states, input_signature=[ids, ids])
    fixed = tf.function(lambda i, m: encoder.token_states(i, m, fixed_weights=True), input_signature=[ids, ids])
    graph = fixed.get_concrete_function().graph.as_graph_def()
    kept = [n for n in graph.node if n.op == "_MklNativeFusedMatMul" and n.attr["is_filter_const"].b]
    assert len(kept) == 6 * config.num_hidden_layers  # query, key, value, attention output, intermediate, output
    if dtype == "float32":
        assert sum(n.attr["fused_ops"].list.s == [b"BiasAdd", b"Add"] for n in kept) == 2 * config.num_hidden_layers
    assert not [n for n in plain.get_concrete_function().graph.as_graph_def().node if n.op == "_MklNativeFusedMatMul"]
    args = (batch["input_word_ids"], batch["input_mask"])
    for _ in range(2):  # the second call runs on the kept kernels
        (ours, pooled), (reference, reference_pooled) = fixed(*args), plain(*args)
        for a, b in zip(ours, reference):
            if dtype == "float32":
                assert_same(config, a.numpy(), b.numpy(), "fixed weights vs plain")
            else:  # two bfloat16 computations: a rounding of the states' largest component apart
                assert np.abs(a.numpy() - b.numpy()).max() <= 2 ** -7 * np.abs(b.numpy()).max() * 4
        assert np.array_equal(pooled.numpy(), reference_pooled.numpy()) or dtype == "bfloat16" or \
            np.abs(pooled.numpy() - reference_pooled.numpy()).max() < 1e-5


def _graph_ops(function, *args) -> set:
    """Every op type in `function`'s traced graph and in the functions it calls (loops, conditions)."""
    concrete = getattr(function, "concrete", function)  # a `graphs.FunctionCall`'s concrete function
    if not isinstance(concrete, tf.types.experimental.ConcreteFunction):
        concrete = function.get_concrete_function(*args)
    graph = concrete.graph.as_graph_def()
    return {n.op for n in graph.node} | {n.op for f in graph.library.function for n in f.node_def}


def test_only_the_embedders_graphs_keep_kernels(make_checkpoint, tmp_path):
    """The embedder's encoder graph fixes the weights; the Keras layer's (it fine-tunes, and reloads weights)
    and a SavedModel's (served where oneDNN may be off) compute with plain matmuls."""
    from bert_tf.embed.graphs import encode_graph
    from bert_tf.keras import WordVectors
    from bert_tf.model import onednn
    from bert_tf.serve.export import export_saved_model

    directory, _ = make_checkpoint(num_hidden_layers=2)
    config, encoder = load_encoder(directory)
    encode = encode_graph(encoder, {"words": ((-1,), "sum")})
    assert ("_MklNativeFusedMatMul" in _graph_ops(encode)) == onednn.fixed_weights_available()
    layer = WordVectors.from_checkpoint(directory)
    texts = tf.TensorSpec([None], tf.string)
    assert "_MklNativeFusedMatMul" not in _graph_ops(tf.function(lambda t: layer(t)), texts)
    exported = export_saved_model(directory, tmp_path / "bert")
    assert b"_MklNativeFusedMatMul" not in (exported / "saved_model.pb").read_bytes()


def test_a_fixed_weight_matmul_fuses_an_activation_or_a_residual_not_both():
    from bert_tf.model import onednn

    x = tf.zeros([2, 2])
    with pytest.raises(ValueError, match="an activation or a residual add, not both"):
        onednn.fixed_weight_dense(x, x, tf.zeros([2]), activation=tf.nn.relu, residual=x)
