"""Fine-tuning helpers: instruction records, chat rendering with loss masks, generation metrics."""
