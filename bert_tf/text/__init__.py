"""Text: what the API accepts as texts, and the in-graph WordPiece tokenizer with offsets."""
