"""`is_complete`: the one test of a finished checkpoint, in files/ beside the layout it checks."""

from __future__ import annotations

import json
import subprocess
import sys

from bert_tf.files.layout import MANIFEST, is_complete


def test_a_config_that_does_not_parse_or_is_not_an_object_is_not_complete(make_checkpoint):
    directory, _ = make_checkpoint()
    config = directory / "bert_config.json"
    assert is_complete(directory)
    text = config.read_text()
    config.write_text(text[: len(text) // 2])  # a copy cut short
    assert not is_complete(directory)
    config.write_text("[1, 2]")
    assert not is_complete(directory)


def test_manifest_sizes_are_checked(make_checkpoint):
    directory, _ = make_checkpoint()
    sizes = {p.name: p.stat().st_size for p in directory.iterdir()}
    (directory / MANIFEST).write_text(json.dumps({"files": {**sizes, "vocab.txt": sizes["vocab.txt"] + 1}}))
    assert not is_complete(directory)
    (directory / MANIFEST).write_text(json.dumps({"files": sizes}))
    assert is_complete(directory)


def test_is_complete_needs_the_standard_library_only(make_checkpoint):
    """The download command lists checkpoints before NumPy or TensorFlow are imported."""
    directory, _ = make_checkpoint()
    code = ("import sys; from bert_tf.files.layout import is_complete; ok = is_complete(sys.argv[1]); "
            "heavy = sorted({'numpy', 'tensorflow', 'bert_tf.model', 'bert_tf.store'} & set(sys.modules)); "
            "print(ok, heavy)")
    out = subprocess.run([sys.executable, "-c", code, str(directory)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True []"
