"""Generators of instruction tasks with checkable answers: the embedded default for fine-tuning and RLHF."""
