"""Serving: the SavedModel export for TensorFlow Serving and TF Hub-style loaders."""
