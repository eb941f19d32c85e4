"""Preference records — a prompt, a chosen and a rejected answer — and how each file format spells them.

Formats (the `--format` choices):
- trl: TRL's standard preference format, one JSON object a line: {"prompt", "chosen", "rejected"} as texts;
- trl-chat: TRL's conversational form: the same keys as lists of {"role", "content"} messages (the
  prompt may carry a system turn and earlier turns); without "prompt", the common start of chosen
  and rejected is the prompt (TRL's implicit prompt);
- hh: Anthropic HH-RLHF transcripts: {"chosen": "\\n\\nHuman: …\\n\\nAssistant: …", "rejected": …};
- llamafactory (import only): LLaMA-Factory preference data, a JSON array (or JSON lines) in alpaca
  style {"instruction", "input", "chosen", "rejected", optional "system", "history"} or sharegpt
  style {"conversations": [{"from", "value"}, …], "chosen": {"from", "value"}, "rejected": {…}}.

Pure conversions, no store: `formats.py` moves records in and out of labeling queues. Files are read
by engine/data/reader.py (JSON lines, a JSON array, or any other data file whose records have these
fields). Imported by the GUI: the standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.data.reader import Record, iter_records, kind_of
from engine.errors import DataError
from engine.finetune.formats import MEANING_FIELDS, SHAREGPT_ROLES, meaning_field, turn_problem

EXPORT_FORMATS = ("trl", "trl-chat", "hh")
IMPORT_FORMATS = ("trl", "trl-chat", "hh", "llamafactory")
FORMAT_FIELDS = {
    "trl": 'prompt, chosen, rejected as texts',
    "trl-chat": 'prompt, chosen, rejected as lists of {"role", "content"}',
    "hh": 'chosen, rejected as "\\n\\nHuman: …\\n\\nAssistant: …" transcripts',
    "llamafactory": 'instruction/input/chosen/rejected, or conversations with chosen/rejected {"from", "value"}',
}
# Answers judged one at a time (engine/labeling/unpaired.py reads them); named here so that a file
# of no known shape is answered with every shape the import reads.
UNPAIRED_FIELDS = {
    "trl-unpaired": "prompt, completion, label (true = good answer)",
    "llamafactory-kto": "instruction/input/output or conversations ending with the answer, and kto_tag",
}
_HH_NAMES = {"user": "Human", "assistant": "Assistant", "system": "System"}
_HH_ROLES = {name: role for role, name in _HH_NAMES.items()}
_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant|System):")
# Fields of a preference record that change its meaning (media, tool definitions): refused, as in
# fine-tuning data, since the pair would be trained without them.
_MEANING_FIELDS = {name: entry for name, entry in MEANING_FIELDS.items() if name not in ("label", "chosen", "rejected")}


class RecordError(ValueError):
    """What is wrong with one record (the caller adds where it is)."""


@dataclass(frozen=True)
class Problem:
    """A record that was not imported, and why."""

    where: str  # "pairs.jsonl, line 4" or "prefs.json, record 3 (line 14)"
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"

    def to_json(self) -> dict:
        return {"where": self.where, "message": self.message}


@dataclass(frozen=True)
class PreferenceRecord:
    """One preference: the prompt (as text and as chat messages) and the chosen and rejected answers.

    `chosen` and `rejected` are the answer's messages (usually one assistant message). `where`
    locates a record read from a file; `extra` keeps its fields that no format reads.
    """

    prompt: str
    prompt_messages: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    where: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def chosen_text(self) -> str:
        return answer_text(self.chosen)

    @property
    def rejected_text(self) -> str:
        return answer_text(self.rejected)


@dataclass
class ReadResult:
    """The records of one file, the format they were read as, and the records that could not be read."""

    path: Path
    format: str
    records: list[PreferenceRecord]
    problems: list[Problem]
    total: int  # records in the file, readable or not


def line_of(where: str) -> int:
    """The number a record's place starts with ('pairs.jsonl, line 4' -> 4; 'prefs.json, record 3 (line 14)'
    -> 3): sorts the problems of one file in the order its records come."""
    digits = "".join(c if c.isdigit() else " " for c in where.split(", ", 1)[-1]).split()
    return int(digits[0]) if digits else 0


# -- messages ----------------------------------------------------------------------------------

def user_prompt(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def content_text(content: Any) -> str:
    """A message's content as text (OpenAI content parts joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return "" if content is None else str(content)


def answer_text(messages: list[dict]) -> str:
    return "\n\n".join(content_text(m.get("content")) for m in messages)


def prompt_text(messages: list[dict]) -> str:
    """The prompt as one text: a lone user turn as itself, a conversation as a role-labelled transcript."""
    if is_plain_prompt(messages):
        return messages[0]["content"]
    return "\n\n".join(f"{str(m.get('role', '')).capitalize()}: {content_text(m.get('content'))}" for m in messages)


def is_plain_prompt(messages: list[dict]) -> bool:
    """A single user turn with nothing but text: the prompt needs no messages stored beside its text."""
    return (len(messages) == 1 and set(messages[0]) == {"role", "content"} and messages[0]["role"] == "user"
            and isinstance(messages[0]["content"], str))


def is_plain_answer(messages: list[dict]) -> bool:
    return (len(messages) == 1 and set(messages[0]) == {"role", "content"} and messages[0]["role"] == "assistant"
            and isinstance(messages[0]["content"], str))


# -- writing -----------------------------------------------------------------------------------

def format_record(fmt: str, record: PreferenceRecord) -> dict:
    """The JSON object `fmt` writes for `record`."""
    if fmt == "trl":
        return {"prompt": record.prompt, "chosen": record.chosen_text, "rejected": record.rejected_text}
    if fmt == "trl-chat":
        return {"prompt": record.prompt_messages, "chosen": record.chosen, "rejected": record.rejected}
    if fmt == "hh":
        return {"chosen": hh_transcript(record.prompt_messages + record.chosen),
                "rejected": hh_transcript(record.prompt_messages + record.rejected)}
    raise ValueError(f"no writer for format {fmt!r}; export formats: {', '.join(EXPORT_FORMATS)}")


def export_problem(fmt: str, record: PreferenceRecord) -> str | None:
    """Why `fmt` cannot hold `record` so that it reads back as the same turns (None when it can).

    HH transcripts mark turns with "\\n\\nHuman:" and "\\n\\nAssistant:" inside one text, with no escape:
    a prompt or answer that holds such a line would read back as other turns."""
    if fmt != "hh":
        return None
    messages = record.prompt_messages + record.chosen + record.rejected
    if any(_HH_TURN.search(content_text(m.get("content"))) for m in messages):
        return ("a prompt or answer holds a line that starts an HH turn (\"\\n\\nHuman:\", \"\\n\\nAssistant:\" or "
                "\"\\n\\nSystem:\"), which HH transcripts cannot escape")
    roles = sorted({str(m.get("role")) for m in messages} - set(_HH_NAMES))
    if roles:
        return f"it has {', '.join(roles)} turns, which HH transcripts cannot mark"
    try:
        back = parse_record("hh", format_record("hh", record))
    except RecordError as e:
        return f"its HH transcript would not read back ({e})"
    if [_turn(m) for m in back.prompt_messages + back.chosen + back.rejected] != [_turn(m) for m in messages]:
        return "its HH transcript would read back as other turns (a turn that starts or ends with spaces)"
    return None


def flattened_by(fmt: str, record: PreferenceRecord) -> bool:
    """Whether `fmt` writes `record`'s conversation as plain texts: the trl format holds one prompt text
    and one answer text, so a system turn, earlier turns or an answer of several turns become one text."""
    return fmt == "trl" and not (is_plain_prompt(record.prompt_messages) and is_plain_answer(record.chosen)
                                 and is_plain_answer(record.rejected))


def _turn(message: dict) -> tuple[str, str]:
    return str(message.get("role")), content_text(message.get("content"))


def hh_transcript(messages: list[dict]) -> str:
    # A system turn has no place in HH's Human/Assistant transcripts; written as a "System:" turn
    # it survives the trip (the reader turns it back into a system message) instead of vanishing.
    return "".join(f"\n\n{_HH_NAMES.get(m['role'], str(m['role']).capitalize())}: {content_text(m.get('content'))}"
                   for m in messages)


# -- reading -----------------------------------------------------------------------------------

def detect_format(raw: Any) -> str | None:
    """The format whose fields `raw` has, or None."""
    if not isinstance(raw, dict):
        return None
    if "conversations" in raw or "instruction" in raw or ("messages" in raw and isinstance(raw.get("chosen"), dict)):
        return "llamafactory"
    if "chosen" not in raw or "rejected" not in raw:
        return None
    if "prompt" in raw:
        return "trl-chat" if isinstance(raw["prompt"], list) else "trl"
    return "trl-chat" if isinstance(raw["chosen"], list) else "hh"


def parse_record(fmt: str, raw: Any, where: str = "") -> PreferenceRecord:
    """`raw` read as a `fmt` record. Raises RecordError saying what is wrong."""
    if not isinstance(raw, dict):
        raise RecordError(f"expected a JSON object, found {kind_of(raw)}")
    parser = {"trl": _parse_trl, "trl-chat": _parse_trl_chat, "hh": _parse_hh, "llamafactory": _parse_llamafactory}[fmt]
    prompt, chosen, rejected, used = parser(raw)
    found = meaning_field(raw, used, _MEANING_FIELDS)
    if found is not None:
        name, what, effect, todo = found
        raise RecordError(f"the field '{name}' holds {what}, which a preference pair does not carry: {effect}")
    text = prompt_text(prompt)
    if not text.strip():
        raise RecordError("the prompt is empty")
    if answer_text(chosen) == answer_text(rejected):
        raise RecordError("chosen and rejected are the same text: there is no preference to learn")
    return PreferenceRecord(prompt=text, prompt_messages=prompt, chosen=chosen, rejected=rejected,
                            where=where, extra={k: v for k, v in raw.items() if k not in used})


def read_records(path: Path | str, fmt: str = "auto", reader: Callable[..., Iterable[Record]] = iter_records) -> ReadResult:
    """Every record of a preference file (JSON lines, a JSON array, or another data file), and the ones
    that could not be read. `reader` reads the file's records (a DataSource's `records`, which maps
    a registry entry's fields).

    `fmt` "auto" takes the format of the first record whose fields tell it. Raises DataError when
    the file cannot be read at all, or no record says which format it is in.
    """
    path = Path(path)
    if fmt != "auto" and fmt not in IMPORT_FORMATS:
        raise DataError(f"Unknown preference format {fmt!r}.", f"Use one of: auto, {', '.join(IMPORT_FORMATS)}.")
    if not path.is_file():
        raise DataError(f"No preference file at {path}.", "Check the path (and that it is a file, not a folder).")
    problems: list[tuple[int, Problem]] = []
    raws: list[tuple[int, str, Any]] = []

    def unreadable(where: str, problem: str, hint: str) -> None:
        problems.append((len(problems) + len(raws), Problem(where, problem)))

    for record in reader(path, source=path.name, on_problem=unreadable):
        raws.append((len(problems) + len(raws), record.where, record.value))
    total = len(raws) + len(problems)
    if fmt == "auto":
        fmt = next((f for f in (detect_format(raw) for _, _, raw in raws) if f), None) or ""
        if not fmt:
            first = raws[0][2] if raws else None
            found = (f"its first record has the fields {', '.join(map(str, first)) or '(none)'}" if isinstance(first, dict)
                     else "it holds no JSON objects" if raws else "it holds no readable records")
            raise DataError(f"Cannot tell the preference format of {path}: {found}.",
                            "Known formats: " + "; ".join(f"{k} ({v})" for k, v in (FORMAT_FIELDS | UNPAIRED_FIELDS).items())
                            + ". Rename the fields, or pass --format.")
    records = []
    for seq, where, raw in raws:
        try:
            records.append(parse_record(fmt, raw, where))
        except RecordError as e:
            other = detect_format(raw)
            hint = f" (it looks like a {other} record)" if other and other != fmt else ""
            problems.append((seq, Problem(where, f"not a {fmt} record: {e}{hint}")))
    return ReadResult(path=path, format=fmt, records=records, problems=[p for _, p in sorted(problems, key=lambda x: x[0])],
                      total=total)


# -- the formats, one parser each: (prompt messages, chosen messages, rejected messages, fields read) --

def _parse_trl(raw: dict) -> tuple[list[dict], list[dict], list[dict], set[str]]:
    prompt = text_field(raw, "prompt")
    return user_prompt(prompt), answer(text_field(raw, "chosen")), answer(text_field(raw, "rejected")), {"prompt", "chosen", "rejected"}


def _parse_trl_chat(raw: dict) -> tuple[list[dict], list[dict], list[dict], set[str]]:
    chosen, rejected = message_list(raw, "chosen"), message_list(raw, "rejected")
    if "prompt" in raw:
        prompt = message_list(raw, "prompt")
    else:  # TRL's implicit prompt: the turns chosen and rejected share
        shared = 0
        while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
        if not prompt:
            raise RecordError("there is no prompt field and chosen and rejected share no first turn to take it from")
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if not turns:
            raise RecordError(f"{name} has no answer after the prompt")
    return prompt, chosen, rejected, {"prompt", "chosen", "rejected"}


def _parse_hh(raw: dict) -> tuple[list[dict], list[dict], list[dict], set[str]]:
    chosen, rejected = _hh_turns(text_field(raw, "chosen"), "chosen"), _hh_turns(text_field(raw, "rejected"), "rejected")
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if turns[-1]["role"] != "assistant":
            raise RecordError(f"{name} does not end with an 'Assistant:' turn")
    if chosen[:-1] != rejected[:-1]:
        raise RecordError("chosen and rejected differ before their last 'Assistant:' turn "
                          "(only the last answer may differ)")
    if not chosen[:-1]:
        raise RecordError("there is no 'Human:' turn before the answer")
    return chosen[:-1], chosen[-1:], rejected[-1:], {"chosen", "rejected"}


def _hh_turns(text: str, name: str) -> list[dict]:
    marks = list(_HH_TURN.finditer(text))
    if not marks:
        raise RecordError(f"{name} has no 'Human:' or 'Assistant:' turns (HH transcripts read "
                          "\"\\n\\nHuman: …\\n\\nAssistant: …\"); a TRL record needs a prompt field")
    if text[:marks[0].start()].strip():
        raise RecordError(f"{name} has text before its first 'Human:' turn")
    turns = []
    for mark, following in zip(marks, marks[1:] + [None]):
        content = text[mark.end():following.start() if following else len(text)]
        turns.append({"role": _HH_ROLES[mark.group(1)], "content": content[1:] if content.startswith(" ") else content})
    return turns


def _parse_llamafactory(raw: dict) -> tuple[list[dict], list[dict], list[dict], set[str]]:
    prompt, used = llamafactory_prompt(raw)
    if "instruction" in raw:  # alpaca style
        return prompt, answer(text_field(raw, "chosen")), answer(text_field(raw, "rejected")), used | {"chosen", "rejected"}
    chosen, rejected = (sharegpt_turn(raw.get(name), name) for name in ("chosen", "rejected"))
    return prompt, [chosen], [rejected], used | {"chosen", "rejected"}


def llamafactory_prompt(raw: dict) -> tuple[list[dict], set[str]]:
    """The prompt of a LLaMA-Factory record (alpaca or sharegpt style) as messages, and the fields read."""
    system = raw.get("system")
    if system is not None and not isinstance(system, str):
        raise RecordError(f"system is {kind_of(system)}, not a text")
    prompt = [{"role": "system", "content": system}] if system else []
    if "instruction" in raw:  # alpaca style
        instruction = text_field(raw, "instruction")
        query = raw.get("input") or ""
        if not isinstance(query, str):
            raise RecordError(f"input is {kind_of(query)}, not a text")
        history = raw.get("history") or []
        if not isinstance(history, list) or not all(
                isinstance(t, list) and len(t) == 2 and all(isinstance(x, str) for x in t) for t in history):
            raise RecordError("history must be a list of [question, answer] pairs of texts")
        for question, reply in history:
            prompt += [{"role": "user", "content": question}, {"role": "assistant", "content": reply}]
        # LLaMA-Factory joins instruction and input with a newline into one user turn.
        prompt.append({"role": "user", "content": "\n".join(p for p in (instruction, query) if p)})
        return prompt, {"instruction", "input", "history", "system"}
    key = "conversations" if "conversations" in raw else "messages"
    turns = raw.get(key)
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"{key} must be a non-empty list of turns")
    prompt += [sharegpt_turn(t, f"turn {i} of {key}") for i, t in enumerate(turns, start=1)]
    if prompt[-1]["role"] != "user":
        raise RecordError(f"the last turn of {key} is {prompt[-1]['role']}; it must be the human turn being answered")
    return prompt, {key, "system"}


def sharegpt_turn(turn: Any, name: str) -> dict:
    if not isinstance(turn, dict):
        raise RecordError(f"{name} is {kind_of(turn)}; expected a turn {{\"from\": …, \"value\": …}}")
    role_key, content_key = ("from", "value") if "from" in turn else ("role", "content")
    problem = turn_problem(turn, str(turn.get(role_key)))
    if problem is not None:
        raise RecordError(f"{name}: {problem[0]}")
    role = SHAREGPT_ROLES.get(str(turn.get(role_key)).lower())
    if role is None:
        raise RecordError(f"{name} has the role {turn.get(role_key)!r} (known: {', '.join(sorted(SHAREGPT_ROLES))})")
    content = turn.get(content_key)
    if not isinstance(content, str):
        raise RecordError(f"the {content_key} of {name} is {kind_of(content)}, not a text")
    return {"role": role, "content": content}


def text_field(raw: dict, key: str) -> str:
    if key not in raw:
        raise RecordError(f"the field {key!r} is missing (fields: {', '.join(map(str, raw)) or 'none'})")
    value = raw[key]
    if not isinstance(value, str):
        raise RecordError(f"{key} is {kind_of(value)}, not a text")
    return value


def message_list(raw: dict, key: str) -> list[dict]:
    if key not in raw:
        raise RecordError(f"the field {key!r} is missing (fields: {', '.join(map(str, raw)) or 'none'})")
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise RecordError(f"{key} is {kind_of(value)}; expected a non-empty list of {{\"role\", \"content\"}} messages")
    for i, message in enumerate(value, start=1):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) or "content" not in message:
            raise RecordError(f"turn {i} of {key} is not a message with 'role' and 'content'")
        problem = turn_problem(message, message["role"])
        if problem is not None:
            raise RecordError(f"turn {i} of {key}: {problem[0]}")
        if not isinstance(message["content"], (str, list)):
            raise RecordError(f"the content of turn {i} of {key} is {kind_of(message['content'])}, not a text")
    return value
