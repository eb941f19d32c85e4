"""The engine's data layer: corpus sources, tokenizer training and sequence packing."""
