"""Instruction-data formats: detect one from a record's fields and convert records to chat messages.

The formats (the `data.format` choices):
- alpaca: {"instruction", "input" (optional), "output"} (and an optional "system");
- sharegpt: {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]} (and an optional
  "system"); LLaMA-Factory's tool turns: "function_call" (the assistant calls: a JSON {"name",
  "arguments"} or a list of them) and "observation" (the tool's result), with "tools" (a JSON string);
- messages: {"messages": [{"role": "user"|"assistant"|"system"|"developer"|"tool", "content": ...}, ...]}
  (OpenAI style: "tool_calls" on assistant turns, "tool" turns with the results, a "tools" list);
- prompt_completion: {"prompt", "completion"}, as strings or, as TRL writes them, lists of messages
  (with "tools" too);
- text: {"text"}: plain text for continued pretraining.

A turn with `"train": false` (or OpenAI's `"weight": 0`) stays in the conversation but out of the loss.

Fields a format does not read pass (ids, sources, metadata), except those in MEANING_FIELDS: a
preference label, a preference pair's answers, images and other media, tool definitions where the
format has no tools. Training on a record without them trains something else than the data says
(the rejected answers, `<image>` as text, calls to tools the model never saw), so such a record is
refused with its field named. The list is explicit and documented (docs/finetuning.md).

Imported by light code (the GUI): the standard library only.
"""

from __future__ import annotations

import json
from typing import Any

from engine.data.reader import kind_of
from engine.errors import DataError
from engine.finetune.tool_calls import normalise_calls, normalise_tools

FORMAT_FIELDS = {
    "alpaca": "instruction, input, output",
    "sharegpt": "conversations: a list of {from, value}",
    "messages": "messages: a list of {role, content}",
    "prompt_completion": "prompt, completion",
    "text": "text",
}
# The fields each format reads; any other field is extra.
FORMAT_READS = {
    "alpaca": {"instruction", "input", "output", "system"},
    "sharegpt": {"conversations", "system", "tools"},
    "messages": {"messages", "tools", "functions"},
    "prompt_completion": {"prompt", "completion", "tools"},
    "text": {"text"},
}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "system": "system"}
MESSAGE_ROLES = {"user", "assistant", "system", "developer"}
# Roles of tool-call conversations (OpenAI, ShareGPT/LLaMA-Factory, Llama 3). Fine-tuning reads them
# (parse_turns with tools=True); readers of other data refuse them (turn_problem).
TOOL_ROLES = {"tool", "function", "function_call", "observation", "ipython"}
CALL_ROLES = {"function_call"}  # an assistant turn that calls tools; the other tool roles hold results
TOOL_HINT = "Leave the records with tool calls out of the data (or the field, if no turn uses a tool)."
_NO_TOOLS = "tool-call data cannot be trained on yet (its turns would be learned as plain text, or not at all)"
_PAIR_HINT = "This is preference data: use it in a reward or dpo spec (data.sources), or remove the field."
_MEDIA_HINT = ("Atelier trains text-only models: leave out the records with media, or remove the field if the text "
               "does not refer to it.")
# Fields that change what a record means: present (not null, not empty) in a record whose format does
# not read them, they stop it. Field -> (what it holds, what training without it would do, what to do).
MEANING_FIELDS: dict[str, tuple[str, str, str]] = {
    "label": ("a preference label (KTO style: is this answer good?)", "every answer, bad ones too, would be learned",
              "Keep only the records with good answers and remove the field, or train a reward model or DPO on "
              "preference pairs."),
    "chosen": ("the better answer of a preference pair", "the preference would be lost", _PAIR_HINT),
    "rejected": ("the worse answer of a preference pair", "the preference would be lost", _PAIR_HINT),
    **{name: (name, "the text would be learned without them, placeholders such as <image> as plain text",
              _MEDIA_HINT) for name in ("images", "image", "videos", "video", "audios", "audio")},
    "tools": ("tool definitions", _NO_TOOLS, TOOL_HINT),
    "functions": ("function definitions", _NO_TOOLS, TOOL_HINT),
}
# Keys of a message with the same effect.
MESSAGE_MEANING_FIELDS: dict[str, tuple[str, str, str]] = {
    "tool_calls": ("tool calls", _NO_TOOLS, TOOL_HINT),
    "function_call": ("a function call", _NO_TOOLS, TOOL_HINT),
    "weight": ("a training weight (0: do not learn this answer)", "it would not be applied",
               "Leave out the answers of weight 0 and remove the field, or set every weight to 1."),
}
_PASSED_KEYS = ("name",)


def known_formats() -> str:
    """One line listing every format and the fields it reads, for error messages."""
    return "; ".join(f"{name} ({fields})" for name, fields in FORMAT_FIELDS.items())


def detect_format(record: dict, where: str) -> str:
    """The format whose fields `record` has: messages, sharegpt, alpaca, prompt_completion or text.

    `where` names the record in messages ("data.jsonl, line 1"). Raises DataError naming the fields
    found and the formats known when none fits.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {kind_of(record)}.",
                        f"Write each record as an object. Known formats: {known_formats()}.")
    if isinstance(record.get("messages"), list):
        return "messages"
    if isinstance(record.get("conversations"), list):
        return "sharegpt"
    if "instruction" in record and "output" in record:
        return "alpaca"
    if "prompt" in record and "completion" in record:
        return "prompt_completion"
    if "text" in record:
        return "text"
    raise DataError(f"{where}: cannot tell the data format from the fields {_fields(record)}.",
                    f"Known formats: {known_formats()}. Rename the fields to one of these, "
                    f"or set data.format if the file holds one of them.")


def to_messages(record: dict, format: str, where: str) -> list[dict] | str:
    """`record` as a list of {"role", "content"} messages, or as a string for the text format.

    Raises DataError naming `where` and the fields present when the record lacks what `format` needs.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {kind_of(record)}.",
                        "Write each record as an object with the fields of its format.")
    if format in FORMAT_READS:
        refuse_meaning_fields(record, format, where)
    if format == "text":
        return _text_field(record, "text", where, "text")
    if format == "alpaca":
        messages = _alpaca(record, where)
    elif format == "sharegpt":
        messages = _with_system(record, parse_turns(_list_field(record, "conversations", where, format), where,
                                                    "conversations", sharegpt=True, tools=True))
    elif format == "messages":
        messages = parse_turns(_list_field(record, "messages", where, format), where, "messages", sharegpt=False,
                               tools=True)
    elif format == "prompt_completion":
        messages = _prompt_completion(record, where)
    else:
        raise DataError(f"Unknown data format '{format}'.", f"Known formats: {known_formats()}.")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: the conversation has no assistant turn, so there is no answer to learn.",
                        "Every record needs at least one assistant (gpt) message.")
    return messages


def record_tools(record: dict, format: str, where: str) -> list[dict] | None:
    """The tool definitions of `record` (its `tools`, or OpenAI's older `functions`) as templates take
    them, or None. Raises DataError naming `where` for definitions that cannot be read."""
    for name in ("tools", "functions"):
        if name in FORMAT_READS.get(format, ()) and record.get(name) not in (None, "", []):
            return normalise_tools(record[name], f"{where}, field '{name}'")
    return None


def meaning_field(fields: dict, reads: set[str] | frozenset[str] = frozenset(),
                  table: dict[str, tuple[str, str, str]] = MEANING_FIELDS) -> tuple[str, str, str, str] | None:
    """The first field of `fields` (a record; a message, with MESSAGE_MEANING_FIELDS) that is in
    `table`, holds something and is not read (`reads`): (its name, what it holds, what training
    without it would do, what to do)."""
    for name, (what, effect, todo) in table.items():
        if name in reads or name not in fields:
            continue
        value = fields[name]
        if value is None or value == [] or value == {} or value == "" or (name == "weight" and value == 1):
            continue
        return name, what, effect, todo
    return None


def refuse_meaning_fields(record: dict, format: str, where: str) -> None:
    """Raise DataError naming the first field of `record` that changes its meaning and that
    `format` does not read."""
    found = meaning_field(record, FORMAT_READS[format])
    if found is not None:
        name, what, effect, todo = found
        raise DataError(f"{where}: field '{name}' holds {what}, which the {format} format does not read: {effect}.",
                        todo)


def turn_problem(turn: dict, role: str) -> tuple[str, str] | None:
    """(problem, what to do) of a message that cannot be trained on as it says: a tool role or a
    key of MESSAGE_MEANING_FIELDS; None for a message that can."""
    if role.lower() in TOOL_ROLES:
        return f"the role '{role}' is a turn of a tool-call conversation: {_NO_TOOLS}", TOOL_HINT
    found = meaning_field(turn, table=MESSAGE_MEANING_FIELDS)
    if found is None:
        return None
    name, what, effect, todo = found
    return f"'{name}' holds {what}: {effect}", todo


def _alpaca(record: dict, where: str) -> list[dict]:
    _require(record, ("instruction", "output"), where, "alpaca")
    instruction = _text_field(record, "instruction", where, "alpaca")
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' is {kind_of(extra)}, not text.",
                        "The alpaca fields instruction, input and output hold strings.")
    user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
    return _with_system(record, [{"role": "user", "content": user},
                                 {"role": "assistant", "content": _text_field(record, "output", where, "alpaca")}])


def _with_system(record: dict, messages: list[dict]) -> list[dict]:
    """`messages` with the record's `system` field (alpaca, and ShareGPT as LLaMA-Factory writes it)
    as a system turn first, unless the conversation has one."""
    system = record.get("system")
    if isinstance(system, str) and system.strip() and not any(m["role"] == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _prompt_completion(record: dict, where: str) -> list[dict]:
    _require(record, ("prompt", "completion"), where, "prompt_completion")
    prompt, completion = record["prompt"], record["completion"]
    if isinstance(prompt, list):  # TRL's conversational prompt-completion: lists of messages
        messages = parse_turns(prompt, where, "prompt", sharegpt=False, tools=True)
    else:
        messages = [{"role": "user", "content": _text_field(record, "prompt", where, "prompt_completion")}]
    if isinstance(completion, list):
        messages += parse_turns(completion, where, "completion", sharegpt=False, tools=True)
    else:
        messages.append({"role": "assistant",
                         "content": _text_field(record, "completion", where, "prompt_completion")})
    return messages


def parse_turns(turns: list, where: str, field: str, sharegpt: bool, tools: bool = False) -> list[dict]:
    """A record's list of turns (`field`, at `where`) as {"role", "content"} messages; ShareGPT's
    from/value spelling is read too.

    With `tools`, tool-call turns are read too (an assistant message with "tool_calls", a "tool"
    message with the result; see engine/finetune/tool_calls.py) and a turn's `train: false` /
    `weight: 0` becomes `"train": False` on its message. Without, such turns are refused. Raises
    DataError naming the turn (from 1) that cannot be read or trained on as it says."""
    # Both spellings of a turn are accepted in both formats: datasets mix them more often than not.
    roles = SHAREGPT_ROLES if sharegpt else {r: r for r in MESSAGE_ROLES} | {"human": "user", "gpt": "assistant"}
    messages = []
    for i, turn in enumerate(turns, start=1):
        at = f"{where}, turn {i} of '{field}'"
        if not isinstance(turn, dict):
            raise DataError(f"{at}: expected a message object, found {kind_of(turn)}.",
                            "Write each message as {\"role\": ..., \"content\": ...} (or ShareGPT's from/value).")
        # Rows read through Arrow carry both spellings, the unused one as None.
        role_key = "from" if turn.get("from") is not None else "role"
        content_key = "value" if turn.get("value") is not None else "content"
        if tools:
            message = _tool_turn(turn, role_key, content_key, at)
            if message is not None:
                messages.append(message)
                continue
        problem = turn_problem(turn if not tools else {k: v for k, v in turn.items() if k not in _FLAGS},
                               str(turn.get(role_key, "")))
        if problem is not None:
            raise DataError(f"{at}: {problem[0]}.", problem[1])
        if turn.get(role_key) is None or content_key not in turn:
            raise DataError(f"{at}: a message needs 'role' and 'content' (ShareGPT: 'from' and 'value'); "
                            f"it has {_fields(turn)}.",
                            "Fix the message, or set data.format to the format the file is in.")
        role = roles.get(str(turn[role_key]).lower())
        if role is None:
            known = ", ".join(sorted(roles))
            raise DataError(f"{at}: unknown role '{turn[role_key]}' (known: {known}).",
                            "Rename the role to user, assistant or system.")
        message = {"role": role, "content": _content(turn.get(content_key), at, content_key)}
        message.update({k: turn[k] for k in _PASSED_KEYS if turn.get(k) is not None})
        if tools and not _trained(turn, at):
            message["train"] = False
        messages.append(message)
    if not messages:
        raise DataError(f"{where}: '{field}' is an empty list.", "Every record needs at least one exchange.")
    return messages


# A turn's own say on whether it is trained: ours, and OpenAI's fine-tuning weight (0 or 1).
_FLAGS = ("train", "weight")


def _trained(turn: dict, at: str) -> bool:
    """Whether a turn is trained, by its `train` (true/false) or `weight` (1/0) key; absent is true."""
    train, weight = turn.get("train"), turn.get("weight")
    if train is not None and not isinstance(train, bool):
        raise DataError(f"{at}: 'train' is {kind_of(train)}; it must be true or false.",
                        "Write \"train\": false on a turn to keep it out of the loss (true is the default).")
    if weight is not None and (isinstance(weight, bool) or weight not in (0, 1)):
        raise DataError(f"{at}: 'weight' is {weight!r}; only 0 (not trained) and 1 (trained) are understood.",
                        "Set each weight to 0 or 1: answers cannot be weighted in between.")
    return train is not False and weight != 0


def _tool_turn(turn: dict, role_key: str, content_key: str, at: str) -> dict | None:
    """The message of a tool-call turn (a call or a tool's result), or None for another turn."""
    role = str(turn.get(role_key) or "").lower()
    content = turn.get(content_key)
    if role in CALL_ROLES:  # LLaMA-Factory: the value is the call, as JSON
        message = {"role": "assistant", "content": "", "tool_calls": normalise_calls(content, at)}
    elif role in TOOL_ROLES:
        if isinstance(content, list):  # OpenAI's content parts
            content = _content(content, at, content_key)
        elif not isinstance(content, str):  # a result written as a JSON value: the text the tool returned
            content = json.dumps(content, ensure_ascii=False)
        message = {"role": "tool", "content": content}
        message.update({k: turn[k] for k in ("name", "tool_call_id") if turn.get(k) is not None})
    elif turn.get("tool_calls") or turn.get("function_call"):  # OpenAI; function_call is its older spelling
        if SHAREGPT_ROLES.get(role) != "assistant":
            raise DataError(f"{at}: a '{turn.get(role_key)}' turn has tool calls; only the assistant calls tools.",
                            "Give the calls to an assistant turn.")
        calls = turn.get("tool_calls") or turn.get("function_call")
        message = {"role": "assistant", "content": _content(content, at, content_key),
                   "tool_calls": normalise_calls(calls, at)}
    else:
        return None
    if not _trained(turn, at):
        message["train"] = False
    return message


def _content(value: Any, at: str, key: str) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):  # OpenAI's content parts: [{"type": "text", "text": ...}, ...]
        texts = []
        for part in value:
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise DataError(f"{at}: '{key}' has a part of type '{kind}'; only text parts can be trained on.",
                                "Remove image or audio parts, or use text-only records.")
        return "".join(texts)
    raise DataError(f"{at}: '{key}' is {kind_of(value)}, not text.", "Message contents must be strings.")


def _require(record: dict, needed: tuple[str, ...], where: str, format: str) -> None:
    missing = [k for k in needed if record.get(k) is None]
    if missing:
        names = " and ".join(f"'{k}'" for k in needed)
        raise DataError(f"{where}: the {format} format needs {names}; this record has {_fields(record)}.",
                        f"Fix the record, or set data.format to the format the data is in ({known_formats()}).")


def _list_field(record: dict, field: str, where: str, format: str) -> list:
    _require(record, (field,), where, format)
    if not isinstance(record[field], list):
        raise DataError(f"{where}: field '{field}' is {kind_of(record[field])}, not a list of messages.",
                        f"The {format} format holds {FORMAT_FIELDS[format]}.")
    return record[field]


def _text_field(record: dict, field: str, where: str, format: str) -> str:
    _require(record, (field,), where, format)
    value = record[field]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{field}' is {kind_of(value)}, not text.",
                        f"The {format} format holds strings in {FORMAT_FIELDS[format]}.")
    return value


def _fields(record: dict) -> str:
    return ", ".join(f"'{k}'" for k in record) or "no fields"
