"""Instruction-data formats: detect one from a record's fields and convert records to chat messages.

The formats (the `data.format` choices):
- alpaca: {"instruction", "input" (optional), "output"} (and an optional "system");
- sharegpt: {"conversations": [{"from": "human"|"gpt"|"system", "value": ...}, ...]};
- messages: {"messages": [{"role": "user"|"assistant"|"system"|tool roles, "content": ...}, ...]}
  (OpenAI style);
- prompt_completion: {"prompt", "completion"}, as strings or, as TRL writes them, lists of messages;
- text: {"text"}: plain text for continued pretraining.

Imported by light code (the GUI): the standard library only.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError

FORMAT_FIELDS = {
    "alpaca": "instruction, input, output",
    "sharegpt": "conversations: a list of {from, value}",
    "messages": "messages: a list of {role, content}",
    "prompt_completion": "prompt, completion",
    "text": "text",
}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
                  "model": "assistant", "chatgpt": "assistant", "system": "system", "tool": "tool",
                  "function": "tool", "observation": "tool"}
MESSAGE_ROLES = {"user", "assistant", "system", "developer", "tool", "function", "ipython"}
# Keys of a message that chat templates read besides role and content (tool use).
_PASSED_KEYS = ("name", "tool_calls", "tool_call_id")


def known_formats() -> str:
    """One line listing every format and the fields it reads, for error messages."""
    return "; ".join(f"{name} ({fields})" for name, fields in FORMAT_FIELDS.items())


def detect_format(record: dict, where: str) -> str:
    """The format whose fields `record` has: messages, sharegpt, alpaca, prompt_completion or text.

    `where` names the record in messages ("data.jsonl, line 1"). Raises DataError naming the fields
    found and the formats known when none fits.
    """
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {type(record).__name__}.",
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
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {type(record).__name__}.",
                        "Write each record as an object with the fields of its format.")
    if format == "text":
        return _text_field(record, "text", where, "text")
    if format == "alpaca":
        messages = _alpaca(record, where)
    elif format == "sharegpt":
        messages = _turns(_list_field(record, "conversations", where, format), where, "conversations", sharegpt=True)
    elif format == "messages":
        messages = _turns(_list_field(record, "messages", where, format), where, "messages", sharegpt=False)
    elif format == "prompt_completion":
        messages = _prompt_completion(record, where)
    else:
        raise DataError(f"Unknown data format '{format}'.", f"Known formats: {known_formats()}.")
    if not any(m["role"] == "assistant" for m in messages):
        raise DataError(f"{where}: the conversation has no assistant turn, so there is no answer to learn.",
                        "Every record needs at least one assistant (gpt) message.")
    return messages


def _alpaca(record: dict, where: str) -> list[dict]:
    _require(record, ("instruction", "output"), where, "alpaca")
    instruction = _text_field(record, "instruction", where, "alpaca")
    extra = record.get("input")
    if extra is not None and not isinstance(extra, str):
        raise DataError(f"{where}: field 'input' is a {type(extra).__name__}, not text.",
                        "The alpaca fields instruction, input and output hold strings.")
    user = instruction + ("\n\n" + extra if extra and extra.strip() else "")
    messages = [{"role": "user", "content": user},
                {"role": "assistant", "content": _text_field(record, "output", where, "alpaca")}]
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _prompt_completion(record: dict, where: str) -> list[dict]:
    _require(record, ("prompt", "completion"), where, "prompt_completion")
    prompt, completion = record["prompt"], record["completion"]
    if isinstance(prompt, list):  # TRL's conversational prompt-completion: lists of messages
        messages = _turns(prompt, where, "prompt", sharegpt=False)
    else:
        messages = [{"role": "user", "content": _text_field(record, "prompt", where, "prompt_completion")}]
    if isinstance(completion, list):
        messages += _turns(completion, where, "completion", sharegpt=False)
    else:
        messages.append({"role": "assistant",
                         "content": _text_field(record, "completion", where, "prompt_completion")})
    return messages


def _turns(turns: list, where: str, field: str, sharegpt: bool) -> list[dict]:
    # Both spellings of a turn are accepted in both formats: datasets mix them more often than not.
    roles = SHAREGPT_ROLES if sharegpt else {r: r for r in MESSAGE_ROLES} | {"human": "user", "gpt": "assistant"}
    messages = []
    for i, turn in enumerate(turns):
        at = f"{where}, {field}[{i}]"
        if not isinstance(turn, dict):
            raise DataError(f"{at}: expected a message object, found {type(turn).__name__}.",
                            "Write each message as {\"role\": ..., \"content\": ...} (or ShareGPT's from/value).")
        # Rows read through Arrow carry both spellings, the unused one as None.
        role_key = "from" if turn.get("from") is not None else "role"
        content_key = "value" if turn.get("value") is not None else "content"
        if turn.get(role_key) is None or (content_key not in turn and turn.get("tool_calls") is None):
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
        messages.append(message)
    if not messages:
        raise DataError(f"{where}: '{field}' is an empty list.", "Every record needs at least one exchange.")
    return messages


def _content(value: Any, at: str, key: str) -> str:
    if value is None:
        return ""  # an assistant turn that only calls tools
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
    raise DataError(f"{at}: '{key}' is a {type(value).__name__}, not text.", "Message contents must be strings.")


def _require(record: dict, needed: tuple[str, ...], where: str, format: str) -> None:
    missing = [k for k in needed if record.get(k) is None]
    if missing:
        names = " and ".join(f"'{k}'" for k in needed)
        raise DataError(f"{where}: the {format} format needs {names}; this record has {_fields(record)}.",
                        f"Fix the record, or set data.format to the format the data is in ({known_formats()}).")


def _list_field(record: dict, field: str, where: str, format: str) -> list:
    _require(record, (field,), where, format)
    if not isinstance(record[field], list):
        raise DataError(f"{where}: field '{field}' is a {type(record[field]).__name__}, not a list of messages.",
                        f"The {format} format holds {FORMAT_FIELDS[format]}.")
    return record[field]


def _text_field(record: dict, field: str, where: str, format: str) -> str:
    _require(record, (field,), where, format)
    value = record[field]
    if not isinstance(value, str):
        raise DataError(f"{where}: field '{field}' is a {type(value).__name__}, not text.",
                        f"The {format} format holds strings in {FORMAT_FIELDS[format]}.")
    return value


def _fields(record: dict) -> str:
    return ", ".join(f"'{k}'" for k in record) or "no fields"
