"""Checkpoint storage: `registry` (Google's checkpoints as data), `resolve` (which one to use),
`checkpoint_dir` (`CheckpointDir`; the one test of a finished checkpoint is `bert_tf.files.layout.is_complete`),
`download` (the public `download_checkpoint`), `fetch` (resumable HTTP), `unpack` (verified zips and
the MANIFEST), `offline` (the all-MiniLM-L6-v2 build) and `messages` (errors and status lines)."""
