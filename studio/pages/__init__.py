"""Sidebar pages, one module per workflow (pretrain, runs, ...)."""
