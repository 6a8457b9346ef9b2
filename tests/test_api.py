"""The public surface: a short, pinned `__all__`, and a cheap import."""

import subprocess
import sys

import bert_tf

PUBLIC = ["BertConfig", "BertEmbedder", "BertEncoder", "BertTokenizer", "CheckpointDir", "CheckpointError",
          "EmbeddingOptions", "UserError", "WordVector",
          "convert_hf_checkpoint", "download_checkpoint", "export_saved_model", "get_bert_embeddings", "load_config",
          "load_encoder", "resolve_checkpoint"]


def test_all_is_pinned_and_every_name_resolves():
    assert sorted(bert_tf.__all__) == sorted(PUBLIC)
    for name in PUBLIC:
        assert getattr(bert_tf, name) is not None


def test_importing_the_package_does_not_import_tensorflow():
    code = "import sys, bert_tf; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
