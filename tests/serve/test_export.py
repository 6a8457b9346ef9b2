"""The SavedModel export: signatures, parity with the Python API, TF Hub loading, the REST docs.

Parity runs on the real all-MiniLM-L6-v2 checkpoint, with the export loaded in a
fresh Python process that imports only TensorFlow and tensorflow-text, as a
serving client would. Every comparison with the Python API allows float32 rounding
(`bert_tf.testing.float32_bound`): the loaded graph and the library's are optimised
separately and run their matmuls on other batch shapes, so they sum in other orders.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf import BertEmbedder, get_bert_embeddings
from bert_tf.embed import batching
from bert_tf.embed.head import window_plan
from bert_tf.embed.options import EmbeddingOptions
from bert_tf.serve.export import METADATA_ASSET, export_saved_model, exported_space
from bert_tf.testing import assert_float32_close, encoder_bound, tiny_vocab

pytestmark = pytest.mark.numerics

DOCS = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
SAVED_MODEL_CLI = Path(sys.executable).with_name("saved_model_cli")


def assert_same(embedder, served, ours, what):
    """Served equals the Python API to float32 rounding of this encoder."""
    return assert_float32_close(served, ours, encoder_bound(embedder.config, ours), what)


SEED = ["A mouse is a rodent animal.", "A mouse is a computer device.",
        "A rat is an animal that lives in the sewers.", "A computer has a keyboard as an input device."]
UNICODE = [
    "Naïve café owners in Zürich serve crème brûlée.",  # accents
    "東京は日本の首都です and 北京 too.",  # CJK
    "Emoji 😀, a family 👨‍👩‍👧 and ☃ are unknown?",  # emoji, ZWJ sequence
    "עברית ועוד, مرحبا بالعالم!",  # RTL scripts
    "e\u0301 x\u0000y \u200b ΣΑΣ Straße",  # combining accent, NUL, zero-width space, final sigma
]
# About 150 pieces: one window at max_seq_length 512, several at 64.
LONG = " ".join(["The bank of the river was muddy after the storm, said the antidisestablishmentarian."] * 8)
MIXED = ["", LONG, "Short."]
#: Texts of over 512 pieces among short ones: windows of 512 that run across model calls.
LONG_MIXED = ["", LONG * 4, "Short.", *SEED, LONG * 5, LONG * 2]


def _tf_free_env():
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("BERT_TF_VERBOSE_TF", None)
    return env


# ---------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def embedder(minilm_checkpoint):
    return BertEmbedder.from_checkpoint(minilm_checkpoint)


@pytest.fixture(scope="module")
def exports(minilm_checkpoint, tmp_path_factory):
    """Three exports of the real model: defaults, defaults again, and windows of 64 with other options."""
    root = tmp_path_factory.mktemp("exports")
    return {
        "default": export_saved_model(minilm_checkpoint, root / "bert"),
        "again": export_saved_model(minilm_checkpoint, root / "bert_again"),
        "long": export_saved_model(minilm_checkpoint, root / "bert_64", max_seq_length=64, combine="concat",
                                   subword_pooling="first", dim=1000, sentence_strategy="max",
                                   sentence_layer=-1),
        **({"bf16": export_saved_model(minilm_checkpoint, root / "bert_bf16", precision="bfloat16")}
           if _bfloat16_runs() else {}),
        "int8": export_saved_model(minilm_checkpoint, root / "bert_int8", precision="int8"),
    }


def _bfloat16_runs() -> bool:
    """False under a oneDNN cap that leaves bfloat16 without kernels (the CI's AVX2 rerun on an AVX-512 CPU)."""
    from bert_tf.model.precision import check_bfloat16_runs

    try:
        check_bfloat16_runs()
    except ValueError:
        return False
    return True


def _encoder_inputs(tokenizer, texts):
    """[CLS] pieces [SEP], padded: the encoder inputs for `texts` (short ones), built in Python."""
    rows = [[tokenizer.cls_id, *ids, tokenizer.sep_id]
            for ids in tokenizer.tokenize(tf.constant(texts))["pieces"].merge_dims(1, 2).to_list()]
    seq = max(map(len, rows))
    ids = np.array([r + [0] * (seq - len(r)) for r in rows], np.int32)
    mask = np.array([[1] * len(r) + [0] * (seq - len(r)) for r in rows], np.int32)
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": np.zeros_like(ids)}


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  registers the tokenizer's op

    spec = json.load(open(sys.argv[1]))
    models, results = {}, {}
    for job in spec["jobs"]:
        if job["model"] not in models:
            models[job["model"]] = tf.saved_model.load(job["model"])
        signature = models[job["model"]].signatures[job["signature"]]
        dtypes = {k: v.dtype for k, v in signature.structured_input_signature[1].items()}
        out = signature(**{k: tf.constant(v, dtypes[k]) for k, v in job["inputs"].items()})
        for name, value in out.items():
            value = np.asarray(value.numpy())
            if value.dtype.kind in "OS":  # strings (a scalar one comes back as bytes_)
                value = np.vectorize(lambda b: b.decode("utf-8"), otypes=[str])(value).astype(str)
            results[job["name"] + "/" + name] = value
    assert "bert_tf" not in sys.modules, sorted(m for m in sys.modules if m.startswith("bert_tf"))
    np.savez(spec["out"], **results)
""")


@pytest.fixture(scope="module")
def fresh(exports, embedder, tmp_path_factory):
    """Outputs of the exports, computed in a fresh process that never imports bert_tf."""
    work = tmp_path_factory.mktemp("fresh")
    ids = {k: v.tolist() for k, v in _encoder_inputs(embedder.tokenizer, SEED + ["", "Short."]).items()}
    pre = SEED + [LONG * 5]
    jobs = [("seed", "default", "serving_default", {"sentences": SEED}),
            ("unicode", "default", "serving_default", {"sentences": UNICODE}),
            ("mixed", "default", "serving_default", {"sentences": MIXED}),
            ("long", "long", "serving_default", {"sentences": MIXED + SEED[:1]}),
            ("encode", "default", "encode", ids),
            ("preprocess", "default", "preprocess", {"sentences": pre}),
            ("metadata", "default", "metadata", {}),
            ("again_seed", "again", "serving_default", {"sentences": SEED}),
            ("again_mixed", "again", "serving_default", {"sentences": MIXED}),
            ("again_encode", "again", "encode", ids),
            ("bf16_seed", "bf16", "serving_default", {"sentences": SEED + UNICODE}),
            ("bf16_mixed", "bf16", "serving_default", {"sentences": MIXED}),
            ("bf16_metadata", "bf16", "metadata", {}),
            ("bf16_long", "bf16", "serving_default", {"sentences": LONG_MIXED}),
            ("int8_seed", "int8", "serving_default", {"sentences": SEED + UNICODE}),
            ("int8_mixed", "int8", "serving_default", {"sentences": MIXED}),
            ("int8_metadata", "int8", "metadata", {}),
            ("int8_long", "int8", "serving_default", {"sentences": LONG_MIXED})]
    jobs = [job for job in jobs if job[1] in exports]
    spec = {"out": str(work / "out.npz"),
            "jobs": [{"name": n, "model": str(exports[m]), "signature": s, "inputs": i} for n, m, s, i in jobs]}
    (work / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    (work / "load.py").write_text(FRESH_PROCESS, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(work / "load.py"), str(work / "spec.json")], cwd=work,
                          env=_tf_free_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(work / "out.npz") as data:
        results = {key: data[key] for key in data.files}
    results["inputs"] = {"encode": ids, "preprocess": pre}
    return results


def _outputs(results, name):
    prefix = name + "/"
    return {k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix)}


def _check_against_python(out, embedder, texts, *, sentence_strategy="mean", sentence_layer=-2, **options):
    """Asserts the export's serving_default outputs are the Python API's; returns the max differences."""
    words = embedder.embed_words(texts, **options)
    sentences = embedder.sentence_vectors(texts, strategy=sentence_strategy, layer=sentence_layer,
                                          max_seq_length=options.get("max_seq_length"))
    assert out["words"].shape[0] == len(texts) and out["words"].shape[1] == max(map(len, words))
    word_diff = 0.0
    for b, ws in enumerate(words):
        n = len(ws)
        assert list(out["words"][b, :n]) == [w.text for w in ws], texts[b]
        assert out["word_mask"][b].tolist() == [1] * n + [0] * (out["words"].shape[1] - n)
        assert set(out["words"][b, n:]) <= {""}
        assert out["word_starts"][b, :n].tolist() == [w.start for w in ws]
        assert out["word_ends"][b, :n].tolist() == [w.end for w in ws]
        if ws:
            word_diff = max(word_diff, assert_same(embedder, out["word_vectors"][b, :n],
                                                   np.stack([w.vector for w in ws]), f"word vectors of {texts[b]!r}"))
        assert not out["word_vectors"][b, n:].any()
    sentence_diff = assert_same(embedder, out["sentence_embedding"], sentences, "sentence vectors")
    return word_diff, sentence_diff


# ---------------------------------------------------------------------- parity (fresh process)


def test_seed_sentences_match_get_bert_embeddings(fresh, embedder, minilm_checkpoint):
    out = _outputs(fresh, "seed")
    _check_against_python(out, embedder, SEED)
    expected = get_bert_embeddings(SEED, checkpoint=minilm_checkpoint)
    for b, words in enumerate(expected):
        served: dict[str, np.ndarray] = {}
        for word, vector, real in zip(out["words"][b], out["word_vectors"][b], out["word_mask"][b]):
            if real:
                served.setdefault(str(word), vector)
        assert list(served) == list(words)
        assert_same(embedder, np.stack([served[w] for w in words]), np.stack(list(words.values())),
                    "serving_default vs get_bert_embeddings")
    # The notebook's point survives serving: "mouse" differs by context, far beyond rounding.
    mouse = [out["word_vectors"][b, list(out["words"][b]).index("mouse")] for b in (0, 1)]
    assert np.abs(mouse[0] - mouse[1]).max() > 1000 * encoder_bound(embedder.config, mouse[0])


def test_unicode_text_matches_python_api(fresh, embedder):
    out = _outputs(fresh, "unicode")
    _check_against_python(out, embedder, UNICODE)
    words = [str(w) for w in out["words"][1] if w]
    assert "東" in words and "京" in words  # CJK characters are words of their own


def test_empty_and_long_texts_in_one_batch(fresh, embedder):
    out = _outputs(fresh, "mixed")
    _check_against_python(out, embedder, MIXED)
    assert out["word_mask"][0].sum() == 0 and np.isfinite(out["sentence_embedding"][0]).all()


def test_texts_longer_than_max_seq_length_are_windowed_not_truncated(fresh, embedder, exports):
    out = _outputs(fresh, "long")
    texts = MIXED + SEED[:1]
    pieces = len(embedder.tokenizer.tokenize(tf.constant([LONG]))["pieces"].flat_values)
    # The long text really spans several windows of 64.
    assert window_plan(tf.constant([pieces]), 62)["num_windows"].numpy()[0] >= 4
    _check_against_python(out, embedder, texts, max_seq_length=64, combine="concat", subword_pooling="first",
                          dim=1000, sentence_strategy="max", sentence_layer=-1)
    # The last word of the long text has a vector, from the last window.
    last = out["word_mask"][1].sum() - 1
    assert out["words"][1, last] == "." and out["word_vectors"][1, last].any()
    metadata = json.loads((exports["long"] / "assets" / METADATA_ASSET).read_text(encoding="utf-8"))
    assert metadata["max_seq_length"] == 64 and metadata["vector_size"] == 1000


def _run_encoder(embedder, inputs):
    """The encoder in a tf.function, as the Python API runs it.

    The loaded graph and this one are optimised separately (grappler's op fusions), so they
    round differently: measured up to 1.9e-6 at real tokens on MiniLM, and up to 2e-5 at
    padding positions, whose values mean nothing and are not compared."""
    return tf.function(embedder.encoder)({k: tf.constant(v, tf.int32) for k, v in inputs.items()})


def test_encode_reproduces_the_encoder(fresh, embedder):
    out = _outputs(fresh, "encode")
    inputs = fresh["inputs"]["encode"]
    expected = _run_encoder(embedder, inputs)
    layers = expected["encoder_outputs"]
    assert sorted(out) == sorted(["pooled_output", "sequence_output", "embedding_output"]
                                 + [f"encoder_outputs_{i}" for i in range(len(layers))])
    pairs = [("pooled_output", expected["pooled_output"]), ("sequence_output", expected["sequence_output"]),
             ("embedding_output", expected["embedding_output"])]
    pairs += [(f"encoder_outputs_{i}", layer) for i, layer in enumerate(layers)]
    for name, value in pairs:
        assert out[name].shape == tuple(value.shape), name
        served, ours = out[name], value.numpy()
        assert np.all(np.isfinite(served)), name
        if served.ndim == 3:  # per-token outputs: compare the real tokens; padding rows mean nothing
            real = np.asarray(inputs["input_mask"]).astype(bool)
            served, ours = served[real], ours[real]
        assert_same(embedder, served, ours, f"encode {name}")
    # ...and the Python API's hidden states of every real token.
    states = embedder.token_states(SEED + ["", "Short."])
    for row, text in enumerate(states):
        served = np.stack([out["embedding_output"][row]]
                          + [out[f"encoder_outputs_{i}"][row] for i in range(len(layers))])
        assert_same(embedder, served[:, :len(text.ids)], text.states, "encode vs token_states")


def test_preprocess_is_cls_pieces_sep_padded_and_truncated(fresh, embedder):
    out = _outputs(fresh, "preprocess")
    texts = fresh["inputs"]["preprocess"]
    pieces = embedder.tokenizer.tokenize(tf.constant(texts))["pieces"].merge_dims(1, 2).to_list()
    tok = embedder.tokenizer
    assert out["input_word_ids"].shape == (len(texts), 512)
    for row, ids in enumerate(pieces):
        kept = [tok.cls_id, *ids[:510], tok.sep_id]
        assert out["input_word_ids"][row].tolist() == kept + [0] * (512 - len(kept))
        assert out["input_mask"][row].tolist() == [1] * len(kept) + [0] * (512 - len(kept))
    assert len(pieces[-1]) > 510  # the last text was truncated
    assert not out["input_type_ids"].any()


def test_metadata_records_the_options(fresh, exports, minilm_checkpoint, embedder):
    asset = (exports["default"] / "assets" / METADATA_ASSET).read_text(encoding="utf-8")
    served = json.loads(str(_outputs(fresh, "metadata")["json"]))
    assert served == json.loads(asset)
    assert exported_space(exports["default"]) == embedder.space() and served["space"]["path"] is None
    assert exported_space(exports["int8"]).differences(embedder.space()) == {"precision": ("int8", "float32")}
    assert {k: served[k] for k in ("layers", "combine", "subword_pooling", "dim", "max_seq_length",
                                   "lower_case", "sentence_strategy", "sentence_layer", "vector_size")} == {
        "layers": [-4, -3, -2, -1], "combine": "sum", "subword_pooling": "mean", "dim": None,
        "max_seq_length": 512, "lower_case": True, "sentence_strategy": "mean", "sentence_layer": -2,
        "vector_size": 384}
    assert served["hidden_state_indices"] == [3, 4, 5, 6] and served["sentence_hidden_state_index"] == 5
    vocab = (exports["default"] / "assets" / "vocab.txt").read_bytes()
    assert vocab == (Path(minilm_checkpoint) / "vocab.txt").read_bytes()


def test_a_bfloat16_export_matches_the_bfloat16_api(fresh, minilm_checkpoint):
    """Loaded without bert_tf, the bfloat16 SavedModel computes what `precision="bfloat16"` does
    in Python (the same batches through the same kernels: float32 rounding of that result), returns
    float32 tensors, and says in its metadata what it computes in."""
    if not _bfloat16_runs():
        pytest.skip("ONEDNN_MAX_CPU_ISA leaves oneDNN no bfloat16 kernel on this AVX-512 CPU (the CI's AVX2 "
                    "rerun); the bfloat16 tests of tests/embed run TensorFlow's own kernels there instead")
    _check_low_precision_export(fresh, minilm_checkpoint, "bf16", "bfloat16")
    assert json.loads(str(_outputs(fresh, "metadata")["json"]))["precision"] == "float32"


def test_an_int8_export_matches_the_int8_api(fresh, minilm_checkpoint):
    """The int8 SavedModel quantizes each model call as `precision="int8"` does in Python (the same
    batches, so the same per-call input ranges, through the same kernels): float32 rounding of that
    result; float32 tensors out, and metadata that says int8."""
    _check_low_precision_export(fresh, minilm_checkpoint, "int8", "int8")


def _check_low_precision_export(fresh, checkpoint, export, precision):
    """The `export`'s outputs (its `_seed`, `_mixed` and `_metadata` jobs) against the Python API at
    `precision`: float32 tensors, the library's values to float32 rounding, and the metadata."""
    embedder = BertEmbedder.from_checkpoint(checkpoint, precision=precision)
    # The long request really has texts of more than 512 pieces whose windows run across calls.
    n = np.diff(embedder.embed(LONG_MIXED, "sentence_vectors").piece_splits)
    plan = batching.plan(n, 512, None)
    assert n.max() > 512 and (plan["ready"] < plan["call_splits"]).any()  # a call ends inside a text
    for name, texts in ((f"{export}_seed", SEED + UNICODE), (f"{export}_mixed", MIXED),
                        (f"{export}_long", LONG_MIXED)):
        out = _outputs(fresh, name)
        assert out["word_vectors"].dtype == np.float32 and out["sentence_embedding"].dtype == np.float32
        _check_against_python(out, embedder, texts)
    served = json.loads(str(_outputs(fresh, f"{export}_metadata")["json"]))
    assert served["precision"] == precision and served["output_dtype"] == "float32"


def test_exporting_twice_gives_the_same_outputs(fresh, exports):
    for name in ("seed", "mixed", "encode"):
        first, second = _outputs(fresh, name), _outputs(fresh, "again_" + name)
        assert sorted(first) == sorted(second)
        for key in first:
            np.testing.assert_array_equal(first[key], second[key], err_msg=f"{name}/{key}")
    assets = [(exports[k] / "assets" / METADATA_ASSET).read_bytes() for k in ("default", "again")]
    assert assets[0] == assets[1]


# ---------------------------------------------------------------------- the SavedModel as others see it


def _documented_signatures(metadata):
    """The signature table of docs/serving.md with the symbols filled in for this export."""
    sizes = {"batch": -1, "max_words": -1, "seq": -1, "H": metadata["hidden_size"], "D": metadata["vector_size"],
             "max_seq_length": metadata["max_seq_length"]}
    dtypes = {"string": "DT_STRING", "float32": "DT_FLOAT", "int32": "DT_INT32"}
    rows = re.findall(r"^\| (\w+) \| (input|output) \| (\S+) \| (\w+) \| \[([^\]]*)\] \|$",
                      DOCS.read_text(encoding="utf-8"), flags=re.M)
    assert len(rows) > 10
    table: dict[str, set] = {}
    for signature, direction, name, dtype, shape in rows:
        shape = tuple(sizes[s.strip()] for s in shape.split(",") if s.strip())
        names = ([name.replace("{i}", str(i)) for i in range(metadata["num_hidden_layers"])]
                 if "{i}" in name else [name])
        table.setdefault(signature, set()).update((direction, n, dtypes[dtype], shape) for n in names)
    return table


def test_saved_model_cli_lists_the_documented_signatures(exports):
    path = exports["default"]
    proc = subprocess.run([str(SAVED_MODEL_CLI), "show", "--dir", str(path), "--all"], capture_output=True,
                          text=True, env=_tf_free_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    listed: dict[str, set] = {}
    for block in re.split(r"^signature_def\['", proc.stdout, flags=re.M)[1:]:
        signature = block.split("'", 1)[0]
        for direction, name, dtype, shape in re.findall(
                r"(input|output)s\['([^']+)'\] tensor_info:\s+dtype: (\w+)\s+shape: \(([^)]*)\)", block):
            listed.setdefault(signature, set()).add(
                (direction, name, dtype, tuple(int(s) for s in shape.split(",") if s.strip())))
    listed.pop("__saved_model_init_op", None)
    metadata = json.loads((path / "assets" / METADATA_ASSET).read_text(encoding="utf-8"))
    assert listed == _documented_signatures(metadata)
    # The only op a server needs beyond core TensorFlow is tensorflow-text's WordPiece (docs say so).
    ops = set(re.search(r"contains the following ops: \{(.*)\}", proc.stdout).group(1).replace("'", "").split(", "))
    assert ops - set(dir(tf.raw_ops)) == {"FastWordpieceTokenizeWithOffsets"}
    assert sorted(os.listdir(path)) == ["assets", "fingerprint.pb", "saved_model.pb", "variables"]
    assert sorted(os.listdir(path / "assets")) == sorted([METADATA_ASSET, "vocab.txt"])


@pytest.fixture(scope="module")
def hub():
    """tensorflow_hub: needs `pkg_resources`, which requirements.txt keeps by pinning setuptools==80.10.2."""
    pytest.importorskip("tf_keras")
    import tensorflow_hub

    return tensorflow_hub


def _docs_python_block(marker):
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    return next(b for b in blocks if marker in b)


def test_hub_keras_layer_in_a_tf_keras_model(hub, exports, embedder):
    path = str(exports["default"])
    # The docs' own snippet, pointed at this export.
    namespace: dict = {}
    exec(_docs_python_block("hub.KerasLayer").replace('"exports/bert/1"', repr(path)), namespace)
    model = namespace["model"]
    result = model(tf.constant(SEED))
    expected = embedder.sentence_vectors(SEED)
    assert_same(embedder, result["sentence"].numpy(), expected, "hub.KerasLayer sentence")
    preprocessed = namespace["tf_keras"].Model(namespace["text"], namespace["encoder_inputs"])(tf.constant(SEED))
    direct = _run_encoder(embedder, {k: v.numpy() for k, v in preprocessed.items()})
    assert_same(embedder, result["pooled"].numpy(), direct["pooled_output"].numpy(), "hub.KerasLayer pooled")

    # The reusable __call__: the variables are there to train, and encoder_outputs is a list.
    layer = hub.KerasLayer(path, trainable=True)
    assert len(layer.trainable_weights) == len(embedder.encoder.trainable_variables)
    inputs = {k: tf.constant(v) for k, v in _encoder_inputs(embedder.tokenizer, SEED).items()}
    out = layer(inputs)
    reference = _run_encoder(embedder, inputs)
    assert len(out["encoder_outputs"]) == len(reference["encoder_outputs"]) == 6
    for mine, theirs in zip(out["encoder_outputs"], reference["encoder_outputs"]):
        assert_same(embedder, mine.numpy(), theirs.numpy(), "hub.KerasLayer encoder_outputs")
    np.testing.assert_array_equal(out["default"].numpy(), out["pooled_output"].numpy())
    with tf.GradientTape() as tape:  # fine-tuning reaches every weight
        loss = tf.reduce_sum(layer(inputs, training=True)["pooled_output"])
    assert all(g is not None for g in tape.gradient(loss, layer.trainable_weights))
    pooled = hub.KerasLayer(path, signature="encode", output_key="pooled_output")(inputs)
    assert_same(embedder, pooled.numpy(), reference["pooled_output"].numpy(), "encode pooled_output")


# ---------------------------------------------------------------------- the REST docs


def _as_json(value: np.ndarray):
    if value.dtype == object:
        return np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(value).tolist()
    return value.tolist()


def rest_predict(model, body: dict) -> dict:
    """What TF Serving's REST `:predict` does with `body` (tensorflow_serving/util/json_tensor.cc).

    Row form: `instances` lists one entry per batch row (plain values when the signature
    has one input, else objects); `predictions` holds one entry per row, an object of all
    outputs when there are several. Columnar form: `inputs` holds whole tensors (a plain
    value when there is one input); `outputs` the same way.
    """
    signature = model.signatures[body.get("signature_name", "serving_default")]
    specs = signature.structured_input_signature[1]
    assert specs, "TF Serving's REST API refuses signatures without inputs"
    assert ("instances" in body) != ("inputs" in body)
    if "instances" in body:
        rows = body["instances"]
        assert rows, "TF Serving requires at least one instance"
        inputs = ({name: [row[name] for row in rows] for name in specs} if isinstance(rows[0], dict)
                  else {next(iter(specs)): rows})
    else:
        inputs = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(specs)): body["inputs"]}
    assert sorted(inputs) == sorted(specs)
    outputs = {k: _as_json(v.numpy()) for k, v in signature(**{
        k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()}).items()}
    if "instances" in body:
        batch = {len(v) for v in outputs.values()}
        assert len(batch) == 1  # row form needs every output batch-major
        rows = [{k: v[i] for k, v in outputs.items()} for i in range(batch.pop())]
        return {"predictions": rows if len(outputs) > 1 else [next(iter(r.values())) for r in rows]}
    return {"outputs": outputs if len(outputs) > 1 else next(iter(outputs.values()))}


def _documented_exchanges():
    """(url, request body, documented response) for every curl example in docs/serving.md."""
    blocks = re.findall(r"```(\w+)\n(.*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S)
    exchanges = []
    for (lang, text), following in zip(blocks, blocks[1:] + [("", "")]):
        if lang == "bash" and "curl" in text:
            url = re.search(r"(http://\S+)", text).group(1)
            body = json.loads(re.search(r"-d '(.*)'", text, flags=re.S).group(1))
            assert following[0] == "json", f"no documented response after {url}"
            exchanges.append((url, body, json.loads(following[1])))
    return exchanges


def _matches(documented, actual, where="response"):
    """Documented values must equal the actual ones; "[2, 384] float32" stands for an array of that shape."""
    if isinstance(documented, str) and re.fullmatch(r"\[[\d, ]*\] (float32|int32)", documented):
        shape, dtype = documented.rsplit(" ", 1)
        array = np.asarray(actual)
        assert list(array.shape) == json.loads(shape), where
        assert array.dtype.kind == ("f" if dtype == "float32" else "i"), where
    elif isinstance(documented, dict):
        assert isinstance(actual, dict) and sorted(documented) == sorted(actual), where
        for key in documented:
            _matches(documented[key], actual[key], f"{where}.{key}")
    elif isinstance(documented, list):
        assert isinstance(actual, list) and len(documented) == len(actual), where
        for i, (d, a) in enumerate(zip(documented, actual)):
            _matches(d, a, f"{where}[{i}]")
    else:
        assert documented == actual, where


def test_docs_rest_examples_give_the_documented_responses(exports):
    exchanges = _documented_exchanges()
    forms = {("instances" in body, body.get("signature_name", "serving_default")) for _, body, _ in exchanges}
    assert {(True, "serving_default"), (False, "serving_default"), (True, "preprocess"), (False, "encode")} <= forms
    docker = re.search(r"docker run .*", DOCS.read_text(encoding="utf-8")).group(0)
    assert docker == ('docker run -p 8501:8501 -v "$PWD/exports/bert:/models/bert" -e MODEL_NAME=bert '
                      'tensorflow/serving')
    model = tf.saved_model.load(str(exports["default"]))
    for url, body, documented in exchanges:
        assert url == "http://localhost:8501/v1/models/bert:predict"  # MODEL_NAME=bert above
        actual = json.loads(json.dumps(rest_predict(model, body), ensure_ascii=False))  # as it goes over the wire
        _matches(documented, actual, url + " " + json.dumps(body)[:60])


# ---------------------------------------------------------------------- tiny checkpoints: rules and options


def _unique_vocab(size):
    # bert_tf.testing.tiny_vocab repeats some tokens ("a" is a character and a word);
    # FastWordpieceTokenizer rejects duplicates, so keep the first of each.
    vocab = list(dict.fromkeys(tiny_vocab(size)))
    return vocab + [f"[extra{i}]" for i in range(size - len(vocab))]


@pytest.fixture
def tiny(make_checkpoint):
    directory, _ = make_checkpoint("tiny_export", vocab=_unique_vocab(200), num_hidden_layers=3)
    return directory


TINY_TEXTS = ["", "the mouse is a rat", "a cat sat on the keyboard " * 6 + "of the computer device", "x?"]


def _load_and_check(path, checkpoint, **options):
    model = tf.saved_model.load(str(path))
    out = {k: v.numpy() for k, v in model.signatures["serving_default"](sentences=tf.constant(TINY_TEXTS)).items()}
    out["words"] = out["words"].astype(str)
    embedder = BertEmbedder.from_checkpoint(checkpoint)
    _check_against_python(out, embedder, TINY_TEXTS, **options)
    empty = model.signatures["serving_default"](sentences=tf.constant([], tf.string))
    assert empty["word_vectors"].shape[0] == 0 and empty["sentence_embedding"].shape == (0, 32)
    return json.loads(model.signatures["metadata"]()["json"].numpy())


@pytest.mark.slow
def test_options_force_and_overwrite_on_a_tiny_checkpoint(tiny, tmp_path):
    out = tmp_path / "exports" / "tiny"
    first = dict(max_seq_length=12, combine="concat", subword_pooling="first", dim=40)
    path = export_saved_model(tiny, out, sentence_strategy="cls", sentence_layer=1, **first)
    assert path == out / "1"
    metadata = _load_and_check(path, tiny, sentence_strategy="cls", sentence_layer=1, **first)
    assert metadata["combine"] == "concat" and metadata["vector_size"] == 40
    # The export records the VectorSpace of its vectors (no path: it is served elsewhere) for readers to compare.
    space = exported_space(path)
    embedder = BertEmbedder.from_checkpoint(tiny)
    assert space.path is None and space.name == os.path.basename(tiny)
    assert space.compatible(embedder.space(EmbeddingOptions(sentence_strategy="cls", sentence_layer=1, **first)))
    assert set(space.differences(embedder.space())) == {"combine", "subword_pooling", "vector_size",
                                                        "sentence_strategy", "sentence_layer", "max_seq_length"}
    with pytest.raises(FileNotFoundError, match="is not a bert_tf export"):
        exported_space(out)

    with pytest.raises(FileExistsError, match="already exists.*force"):
        export_saved_model(tiny, out)
    second = dict(max_seq_length=12, layers=(0, -1), combine="mean", subword_pooling="last")
    assert export_saved_model(tiny, out, sentence_strategy="pooled", force=True, **second) == path
    metadata = _load_and_check(path, tiny, sentence_strategy="pooled", **second)
    assert metadata["combine"] == "mean" and metadata["hidden_state_indices"] == [0, 3]
    assert exported_space(path).layers == (-4, -1) and exported_space(path).combine == "mean"
    assert os.listdir(out) == ["1"]  # no temporary directory left behind


def test_a_failed_export_leaves_nothing(tiny, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_saved_model(tiny, tmp_path / "bert", max_seq_length=12)
    assert os.listdir(tmp_path / "bert") == []


@pytest.mark.parametrize("options, message", [
    (dict(combine="avg"), "combine must be one of sum, mean, concat; got 'avg'"),
    (dict(sentence_strategy="median"), "sentence_strategy must be one of mean, cls, pooled, max"),
    (dict(sentence_layer=4), "sentence_layer must be integers from -4 to 3"),
    (dict(dim=33), "dim=33 is larger"),
    (dict(max_seq_length=65), "max_seq_length must be an integer from 8 to 64"),
    (dict(version=0), "version must be a positive integer"),
])
def test_bad_options_are_named_before_anything_is_written(tiny, tmp_path, options, message):
    options = {"max_seq_length": 12, **options}
    with pytest.raises(ValueError) as error:
        export_saved_model(tiny, tmp_path / "bert", **options)
    assert message in str(error.value)
    assert not (tmp_path / "bert").exists()


def test_cli_arguments_reach_export_saved_model(tmp_path, monkeypatch, capsys):
    import bert_tf.serve.export
    from bert_tf.cli import build_parser

    calls = []
    monkeypatch.setattr(bert_tf.serve.export, "export_saved_model",
                        lambda *args, **kwargs: calls.append((args, kwargs)) or Path("exports/x/3"))
    parser = build_parser()
    args = parser.parse_args(["export", "--checkpoint", "ckpt", "--out", "exports/x", "--version", "3",
                              "--layers=-1,-2", "--combine", "concat", "--dim", "100", "--cased",
                              "--max-seq-length", "128", "--sentence-strategy", "cls", "--sentence-layer", "-1",
                              "--precision", "bfloat16", "--force"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.strip() == str(Path("exports/x/3"))
    from bert_tf import EmbeddingOptions

    assert calls == [(("ckpt", "exports/x"), dict(
        version=3, options=EmbeddingOptions(layers=(-1, -2), combine="concat", subword_pooling="mean", dim=100,
                                            max_seq_length=128, sentence_strategy="cls", sentence_layer=-1),
        lower_case=False, precision="bfloat16", force=True))]
    defaults = parser.parse_args(["export"])
    assert (defaults.out, defaults.version, defaults.layers, defaults.lower_case, defaults.force,
            defaults.max_seq_length, defaults.precision) == ("exports/bert", 1, None, None, False, None, "float32")
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--layers", "last"])
