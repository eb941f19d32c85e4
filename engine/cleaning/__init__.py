"""Dataset cleaning steps (kind: clean)."""
