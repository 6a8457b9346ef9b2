"""Checkpoint storage: `registry` (Google's checkpoints as data), `resolve` (which one to use),
`checkpoint_dir` (`CheckpointDir` and `is_complete`, the one test of a finished checkpoint),
`download` (the public `download_checkpoint`), `fetch` (resumable HTTP), `unpack` (verified zips and
the MANIFEST), `offline` (the all-MiniLM-L6-v2 build) and `messages` (errors and status lines)."""
