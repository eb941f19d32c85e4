"""The Tokenizer page: train a tokenizer and look at text through it."""
