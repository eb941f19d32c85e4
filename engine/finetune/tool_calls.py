"""Tool definitions and tool calls as the chat templates take them, read from the spellings datasets use,
and calls read back from a model's answer to score them.

What a template is given (the Hugging Face convention, `apply_chat_template(messages, tools=...)`):
- tools: [{"type": "function", "function": {"name", "description", "parameters"}}]; LLaMA-Factory's
  bare definitions ({"name", "description", "parameters"}, often as a JSON string) are wrapped;
- an assistant message's calls: "tool_calls": [{"type": "function", "function": {"name", "arguments":
  a dict}}] (and its "id" when the data has one). OpenAI writes arguments as a JSON string; templates
  write them with `tojson`, which would quote that string a second time, so they are parsed here.

Imported by light code (the GUI): the standard library only.
"""

from __future__ import annotations

import json
from typing import Any

from engine.data.reader import kind_of
from engine.errors import DataError

_TOOLS_HINT = ('Write tools as a list (or a JSON string of one) of {"name", "description", "parameters"} '
               'definitions, or OpenAI\'s {"type": "function", "function": {...}}.')
_CALL_HINT = ('Write a call as {"name": ..., "arguments": {...}} (LLaMA-Factory\'s function_call value, a JSON '
              'string) or OpenAI\'s {"type": "function", "function": {"name": ..., "arguments": "{...}"}}.')


def normalise_tools(value: Any, at: str) -> list[dict] | None:
    """The tool definitions of a record's `tools` (or `functions`) field, wrapped as templates take
    them; None when the field is empty. Raises DataError naming `at` for a value that is not a list
    of named definitions."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        value = _json(value, at, _TOOLS_HINT)
        if value in (None, [], ""):
            return None
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise DataError(f"{at}: the tools are {kind_of(value)}, not a list of definitions.", _TOOLS_HINT)
    tools = []
    for i, tool in enumerate(value, start=1):
        function = tool.get("function") if isinstance(tool, dict) and tool.get("type") == "function" else tool
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise DataError(f"{at}: tool {i} has no name.", _TOOLS_HINT)
        tools.append({"type": "function", "function": function})
    return tools


def normalise_calls(value: Any, at: str) -> list[dict]:
    """A turn's calls (a call, a list of calls, or either as a JSON string) as templates take them.
    Raises DataError naming `at` for a call without a name or with arguments that are not an object."""
    if isinstance(value, str):
        value = _json(value, at, _CALL_HINT)
    calls = value if isinstance(value, list) else [value]
    if not calls:
        raise DataError(f"{at}: the turn calls no tool (an empty list).", _CALL_HINT)
    out = []
    for i, call in enumerate(calls, start=1):
        function = call.get("function") if isinstance(call, dict) and isinstance(call.get("function"), dict) else call
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            raise DataError(f"{at}: call {i} has no function name.", _CALL_HINT)
        arguments = function.get("arguments", function.get("parameters", {}))
        if isinstance(arguments, str):
            arguments = _json(arguments, f"{at}, the arguments of call {i}", _CALL_HINT) if arguments.strip() else {}
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise DataError(f"{at}: the arguments of call {i} are {kind_of(arguments)}, not an object of named "
                            f"values.", _CALL_HINT)
        normalised = {"type": "function", "function": {"name": function["name"], "arguments": arguments}}
        if isinstance(call, dict) and call.get("id") is not None:
            normalised["id"] = call["id"]
        out.append(normalised)
    return out


def call_list(tool_calls: list[dict]) -> list[dict]:
    """Normalised calls as plain {"name", "arguments"} objects: what an answer is scored against."""
    return [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in tool_calls]


def calls_text(calls: list[dict]) -> str:
    """{"name", "arguments"} calls as one JSON object a line: the reference answer shown for a call."""
    return "\n".join(json.dumps(call, ensure_ascii=False) for call in calls)


def calls_in(text: str) -> list[dict]:
    """The calls a generated answer makes, in order: every JSON object in `text` with a "name" and
    "arguments" (or Llama's "parameters"), whatever wraps it (`<tool_call>` tags, a code block)."""
    decoder, calls, at = json.JSONDecoder(), [], text.find("{")
    while at >= 0:
        try:
            value, end = decoder.raw_decode(text, at)
        except ValueError:
            at = text.find("{", at + 1)
            continue
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            arguments = value.get("arguments", value.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    pass
            calls.append({"name": value["name"], "arguments": arguments})
        at = text.find("{", end)
    return calls


def calls_match(answer: str, expected: list[dict]) -> bool:
    """Whether `answer` makes exactly the `expected` calls: the same functions, in the same order,
    with equal arguments (compared as JSON values: key order and spacing do not matter)."""
    return calls_in(answer) == expected


def _json(text: str, at: str, hint: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as e:
        raise DataError(f"{at}: not valid JSON ({e}).", hint) from None
