"""What every `studio-engine` command shares: how it fails, how it shows events, how it reads a spec."""

from __future__ import annotations

import sys

from engine.protocol import json_lines_sink
from engine.specs import SpecError, load_spec

EXIT_INVALID = 2

SPEC_HELP = "the job spec, a YAML file"
RUN_HELP = "a run id, a unique prefix of one, or a run folder"
JSON_HELP = "print JSON (events as JSON lines) instead of the readable view"
DETACH_HELP = "run in the background, surviving this terminal; prints the run id, folder and pid as JSON"


def fail(message: str, code: int = 1) -> int:
    print(f"studio-engine: {message}", file=sys.stderr)
    return code


def live_sink(args, stream):
    """Readable view on a terminal, JSON lines for programs (or with --json)."""
    if getattr(args, "json", False) or not stream.isatty():
        return json_lines_sink(stream)
    from engine.terminal_view import TerminalView
    return TerminalView(stream, color=True, workspace=getattr(args, "workspace", None))


def load_spec_or_exit(path: str):
    try:
        return load_spec(path)
    except FileNotFoundError:
        raise SystemExit(fail(f"no spec file at {path}", EXIT_INVALID))
    except SpecError as e:
        print(e, file=sys.stderr)
        raise SystemExit(EXIT_INVALID)

