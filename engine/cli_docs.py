"""Render `studio-engine`'s argument parser as Markdown: the command reference in docs/cli.md.

    python -m engine.cli_docs > docs/cli.md

Every command, sub-command and option comes from `engine.cli.build_parser()`, so the reference
cannot drift from the program (a test compares the committed file with this output).
"""

from __future__ import annotations

import argparse

from engine.cli import build_parser

WIDTH = 100
HIDDEN = {"_exec", "_dispatch", "_node"}  # children the engine starts itself (`run --detach`, the queue, a host of
# a multi-node run): not for people
# What an argument without a help string of its own means (by its dest), for this reference.
PLAIN_HELP = {
    "name": "the queue's name",
    "file": "the preference file (JSON lines or JSON)",
    "RUN_OR_FILE": "a generate run (id or folder) or its candidates.jsonl",
    "queue": "the queue's name",
}


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, help, parser) of each sub-command, in the order they were added."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                if name not in HIDDEN:
                    found.append((name, helps.get(name, ""), sub))
    return found


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(parser.prog, width=WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, prefix="")
    return formatter.format_help().strip()


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _argument_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        if action.option_strings:
            takes_value = action.nargs != 0
            metavar = action.metavar or action.dest.upper()
            name = ", ".join(f"`{o} {metavar}`" if takes_value else f"`{o}`" for o in action.option_strings)
        else:
            name = f"`{action.metavar or action.dest}`" + (" (optional)" if action.nargs in ("?", "*") else "")
        default = action.default
        shown = "" if default in (None, False, argparse.SUPPRESS) or action.nargs == 0 else f"`{default}`"
        text = _cell((action.help or PLAIN_HELP.get(action.dest) or PLAIN_HELP.get(str(action.metavar), "")) % {"prog": parser.prog, "default": default})
        if action.choices:
            text = (text.rstrip(".") + ". " if text else "") + f"One of: {', '.join(f'`{c}`' for c in action.choices)}."
        rows.append(f"| {name} | {shown} | {text} |")
    return rows


def _command(name: str, help: str, parser: argparse.ArgumentParser, level: int, out: list[str]) -> None:
    out += [f"{'#' * level} `{parser.prog}`", ""]
    description = parser.description or help
    if description:
        out += [_cell(description), ""]
    out += ["```", _usage(parser), "```", ""]
    rows = _argument_rows(parser)
    if rows:
        out += ["| argument | default | description |", "|---|---|---|", *rows, ""]
    for sub_name, sub_help, sub in _subcommands(parser):
        _command(sub_name, sub_help, sub, min(level + 1, 4), out)


def render() -> str:
    parser = build_parser()
    out = ["# `studio-engine` command reference", "",
           ("Generated from the engine's argument parser by `python -m engine.cli_docs`; "
            "`studio-engine COMMAND --help` prints the same. The job specs that `run`, `validate` and "
            "`preview` read are described in [specs.md](specs.md) (`studio-engine schema KIND` prints them "
            "as JSON schema); the events that `run --json` and `attach --json` print, in "
            "[protocol.md](protocol.md)."), "",
           ("Commands that train, load models or describe devices (`run`, `resume`, `preview`, `demo`, "
            "`serve`, `doctor`) need the engine's packages (`pip install \".[engine]\"`); the others "
            "(`validate`, `schema`, `list`, `show`, `attach`, `cancel`, `labels`) also work in a studio-only "
            "install."), "",
           "## Commands", ""]
    for name, help, _ in _subcommands(parser):
        out.append(f"- [`{name}`](#studio-engine-{name.replace('_', '-')}): {_cell(help)}")
    out.append("")
    out += ["## `studio-engine`", "", _cell(parser.description), "", "```", _usage(parser), "```", "",
            "| argument | default | description |", "|---|---|---|", *_argument_rows(parser), ""]
    for name, help, sub in _subcommands(parser):
        _command(name, help, sub, 3, out)
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(render(), end="")
