"""Small file utilities every layer may use: folders and files that appear whole, bert_tf's own paths."""
