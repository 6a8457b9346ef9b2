"""Text: what the API accepts as texts (inputs), the vocabulary and its casing (vocab), what each
code point is to the tokenizer (char_tables), the one tensorflow-text op (ops), and the in-graph
WordPiece tokenizer with offsets (tokenization)."""
