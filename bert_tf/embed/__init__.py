"""Embedding: the options, batching, the shared TensorFlow head, `BertEmbedder` and `get_bert_embeddings`."""
