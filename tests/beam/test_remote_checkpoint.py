"""Checkpoints on tf.io.gfile filesystems (TensorFlow's in-memory `ram://` stands in for gs://)."""

from __future__ import annotations

import os
import secrets

import numpy as np
import pytest

from bert_tf.runtime import tf
from bert_tf.store.remote import cache_path, is_remote, local_checkpoint
from bert_tf.store.resolve import CheckpointNotFoundError


def _upload(local, url):
    for name in os.listdir(local):
        tf.io.gfile.makedirs(url)
        tf.io.gfile.copy(os.path.join(local, name), f"{url}/{name}", overwrite=True)


def test_is_remote():
    assert is_remote("gs://b/x") and is_remote("ram://x") and is_remote("s3://b/x")
    assert not is_remote("checkpoints/x") and not is_remote("/abs/x") and not is_remote("file:///abs/x")
    assert not is_remote(None) and not is_remote("C:/x")


def test_a_remote_checkpoint_is_copied_once_and_embeds_like_the_local_one(tmp_path, beam_checkpoint, embedder,
                                                                          monkeypatch):
    from bert_tf.beam.handler import EmbedSpec

    url = f"ram://bucket-{secrets.token_hex(4)}/checkpoints/tiny"
    _upload(beam_checkpoint, url)
    cache = tmp_path / "cache"
    local = local_checkpoint(url, cache_dir=cache)
    assert local == str(cache_path(url, cache)) and sorted(os.listdir(local)) == sorted(os.listdir(beam_checkpoint))
    assert not [n for n in os.listdir(cache) if n.startswith(".")]  # staged, renamed, lock released
    stamp = os.stat(os.path.join(local, "vocab.txt")).st_mtime_ns
    assert local_checkpoint(url, cache_dir=cache) == local
    assert os.stat(os.path.join(local, "vocab.txt")).st_mtime_ns == stamp  # found, not copied again

    # The remote copy changed (a file of another size): the cache is refreshed, not trusted.
    with tf.io.gfile.GFile(f"{url}/extra.txt", "w") as f:
        f.write("new")
    assert os.path.exists(os.path.join(local_checkpoint(url, cache_dir=cache), "extra.txt"))

    monkeypatch.setenv("BERT_TF_REMOTE_CACHE", str(cache))
    remote = EmbedSpec(url).load()  # what a worker does: copies (here: finds the copy), then loads
    assert remote.fingerprint == embedder.fingerprint
    texts = ["A mouse is a rodent animal.", "the bank of the river"]
    for (words, sentence), (ref_words, ref_sentence) in zip(remote.iter_embed(texts), embedder.iter_embed(texts)):
        np.testing.assert_array_equal(sentence, ref_sentence)  # same weights, same code path: bit-equal
        np.testing.assert_array_equal(np.stack([w.vector for w in words]), np.stack([w.vector for w in ref_words]))

    # A run records the remote checkpoint by its URL (not this machine's copy) and pins the workers to it.
    from bert_tf.beam.pipeline import pin

    pinned, space = pin(EmbedSpec(url, precision="auto"))
    assert pinned.checkpoint == space.path == url and pinned.precision == space.precision != "auto"
    assert space.fingerprint == embedder.fingerprint and space.name == "tiny"


def test_a_missing_remote_checkpoint_says_so(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="checkpoint ram://nowhere-.* does not exist or is empty"):
        local_checkpoint(f"ram://nowhere-{secrets.token_hex(4)}/ckpt", cache_dir=tmp_path)
    assert local_checkpoint("file:///abs/ckpt") == "/abs/ckpt"
    assert local_checkpoint("relative/ckpt") == "relative/ckpt"
