"""Checkpoint storage: Google's registry (as data), resolving which checkpoint to use, `CheckpointDir`,
and the resumable, verified download."""
