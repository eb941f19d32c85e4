"""The Runs page: every run of the workspace."""
