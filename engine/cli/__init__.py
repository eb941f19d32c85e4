"""`studio-engine` (engine.cli.main): `python -m engine.cli` and the `studio-engine` script."""

from engine.cli.main import build_parser, main, script

__all__ = ["build_parser", "main", "script"]
