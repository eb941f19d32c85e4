"""The Data page: clean a corpus (its wizard, dry run, run view and report)."""
