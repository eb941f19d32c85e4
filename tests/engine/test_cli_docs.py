"""docs/cli.md is the engine's argument parser, rendered: every command and option, and current."""

from __future__ import annotations

import argparse
from pathlib import Path

from engine.cli import build_parser
from engine.cli_docs import HIDDEN, _subcommands, render

DOCS = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def test_the_committed_command_reference_is_current():
    assert DOCS.read_text(encoding="utf-8") == render(), "run: python -m engine.cli_docs > docs/cli.md"


def test_every_command_and_option_is_in_the_reference():
    text = render()

    def walk(parser: argparse.ArgumentParser) -> None:
        assert f"`{parser.prog}`" in text
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in text, f"{parser.prog} {option}"
        for _, _, sub in _subcommands(parser):
            walk(sub)

    walk(build_parser())
    assert all(f"studio-engine {name}`" not in text for name in HIDDEN)
    assert "`studio-engine labels export`" in text and "`studio-engine demo`" in text
