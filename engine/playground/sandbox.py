"""The Jinja environment prompt templates run in: jinja2's sandbox (a template reads the row's fields,
not Python's internals) with StrictUndefined (a missing variable is an error, never an empty string).

A leaf module: the evaluate spec checks templates with it, the template renderer builds them with it.
"""

from __future__ import annotations

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment

SANDBOX = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def syntax_problem(source: str) -> str | None:
    """What is wrong with a Jinja template's syntax, or None when it parses."""
    try:
        SANDBOX.parse(source)
    except TemplateSyntaxError as e:
        return f"Jinja syntax error on line {e.lineno}: {e.message}"
    return None
