"""One SHA-256 helper for the store and the index: the digest of the whole file, across block boundaries."""

import hashlib
import os

from bert_tf.files.digest import sha256_file


def test_the_digest_covers_every_block(tmp_path):
    data = os.urandom((1 << 20) * 2 + 12345)  # two full blocks and a partial one
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    assert sha256_file(os.devnull) == hashlib.sha256(b"").hexdigest()
