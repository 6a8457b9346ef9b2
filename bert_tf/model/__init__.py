"""The model: `BertConfig`, the Keras encoder, the TF1 checkpoint format and name table, the strict
restore, and the Hugging Face converter. Knows nothing of text or of where checkpoints are kept."""
