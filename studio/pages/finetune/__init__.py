"""The Fine-tune page: base model, data, method cards, and the run with its scores."""
