"""The occurrence index: every word occurrence of a corpus with its vector, searchable by sense."""
