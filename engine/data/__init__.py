"""The engine's data layer: the one reader of data files (reader.py) and where a source's data
is (locate.py), corpus sources, tokenizer training and sequence packing."""
