"""The prompts of a generate job: read from files, datasets or the task generator into `Prompt`s.

A source is one of:
- `builtin:tasks`: generated tasks with checkable answers (prompts.task, task_examples, task_seed);
- a .txt file: one prompt per line that holds text;
- a .jsonl .json .csv .parquet file, a glob or a folder of them: one record per prompt, whose prompt
  is in `prompt` (text, or a list of messages), `messages`, `conversations` (ShareGPT) or
  `instruction` (+ `input`), or in the field prompts.field names. A conversation that ends with an
  assistant turn gives that turn as the reference answer (as `completion` and `output` do). Tool
  conversations are read as fine-tuning reads them (engine/finetune/formats.py): tool turns, and the
  record's `tools`, which the chat template writes before the conversation;
- a dataset saved with `save_to_disk`, or a hub dataset id (`hub:owner/name` or `owner/name`),
  read at prompts.split.

Files, folders and datasets are found and read by engine/data (locate.py, reader.py). Bad input raises DataError naming the
file, the line (or row) and the fields the record has.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine.data.locate import dataset_records, open_dataset, resolve_source
from engine.data.reader import Record, kind_of
from engine.errors import DataError

# The fine-tuning data's message parser: the same messages for malformed conversations.
from engine.finetune.formats import parse_turns, record_tools
from engine.finetune.rendering import prompt_ids, text_ids
from engine.finetune.tool_calls import call_list, calls_text
from engine.specs.generate import PromptSource

BUILTIN_TASKS = "builtin:tasks"
FIELD = "prompts.sources"
PROMPT_FIELDS = "'prompt' (text or a list of messages), 'messages', 'conversations', or 'instruction' (+ 'input')"


@dataclass
class Prompt:
    id: str  # the record's `id` when it has one, else where it came from (`file.jsonl:12`, `file.parquet:#3`)
    text: str  # what annotators read: the user's message, or the conversation written out
    messages: list[dict]  # the conversation a chat model continues (system, earlier turns, the user's turn)
    where: str  # "file.jsonl, line 12", for messages
    meta: dict = field(default_factory=dict)  # source; reference; task, input and answer for built-in tasks
    tools: list[dict] | None = None  # tool definitions, as chat templates take them


def load_prompts(source: PromptSource, seed: int) -> tuple[list[Prompt], int]:
    """Every prompt of `source.sources` in order, cut to `source.limit`; and how many blank ones
    were skipped. Raises DataError when a source is missing or broken, or when no prompt is left."""
    prompts: list[Prompt] = []
    blank = 0
    for name in source.sources:
        if source.limit is not None and len(prompts) >= source.limit:
            break
        found, skipped = _read_source(name, source, seed)
        prompts.extend(found)
        blank += skipped
    if source.limit is not None:
        prompts = prompts[:source.limit]
    if not prompts:
        raise DataError(f"No prompts in {', '.join(source.sources)}"
                        f"{f' ({blank} blank ones skipped)' if blank else ''}.",
                        "Check that the files hold prompts: one per line in a .txt file, records with "
                        f"{PROMPT_FIELDS} otherwise.")
    if source.system_prompt:
        for prompt in prompts:
            if not any(m["role"] == "system" for m in prompt.messages):
                prompt.messages.insert(0, {"role": "system", "content": source.system_prompt})
                prompt.meta["messages"] = list(prompt.messages)  # so chat exports keep the system turn
    return prompts, blank


def prompt_token_ids(prompt: Prompt, tokenizer: Any, template: str | None) -> list[int]:
    """The prompt's token ids as the model was trained to see them: through its chat template up
    to the assistant's turn (exactly as fine-tuning encodes it), or as plain text to continue
    (a system message first, when there is one)."""
    if template is None:
        if prompt.tools:
            raise DataError(f"{prompt.where}: the prompt offers tools, which only a chat template can write.",
                            "Use a chat template (chat_template: auto, model or chatml), or leave out the tools.")
        system = [m["content"] for m in prompt.messages if m["role"] == "system"]
        return text_ids("\n\n".join([*system, prompt.text]), tokenizer)
    record = {"messages": [*prompt.messages, {"role": "assistant", "content": "x"}], "where": prompt.where}
    if prompt.tools:
        record["tools"] = prompt.tools
    return prompt_ids(record, tokenizer, template)


def _read_source(name: str, source: PromptSource, seed: int) -> tuple[list[Prompt], int]:
    found = resolve_source(name, FIELD, [BUILTIN_TASKS])
    if found.kind == "builtin":
        return _task_prompts(source, seed), 0
    if found.kind != "files":
        dataset = open_dataset(found, FIELD, source.split, "prompts.split")
        return _records(dataset_records(dataset, found.name), source.field)
    prompts, blank = [], 0
    for path in found.files:
        txt = path.suffix.lower() == ".txt"  # one prompt a line
        found_here, skipped = _records(found.records(path, text_field="prompt", txt_documents="line"),
                                       "prompt" if txt else source.field)
        prompts.extend(found_here)
        blank += skipped
    return prompts, blank


def _task_prompts(source: PromptSource, seed: int) -> list[Prompt]:
    from engine.tasks.generators import generate

    task_seed = seed if source.task_seed is None else source.task_seed
    prompts = []
    for i, record in enumerate(generate(source.task, source.task_examples, task_seed)):
        text = f"{record['instruction']}\n\n{record['input']}"
        prompts.append(Prompt(
            id=f"{source.task}-{task_seed}:#{i}", text=text, messages=[{"role": "user", "content": text}],
            where=f"{BUILTIN_TASKS} ({source.task}), example {i}",
            meta={"source": BUILTIN_TASKS, "task": source.task, "input": record["input"], "answer": record["output"]}))
    return prompts


def _records(records: Iterable[Record], field_name: str | None) -> tuple[list[Prompt], int]:
    prompts, blank = [], 0
    for record in records:
        row, where = record.value, record.where
        messages, reference = _conversation(row, field_name, where)
        if not any((m.get("content") or "").strip() for m in messages if m["role"] != "system"):
            blank += 1
            continue
        meta: dict[str, Any] = {"source": record.source}
        if reference is not None:
            meta["reference"] = reference
        spoken = [m for m in messages if m["role"] != "system"]
        if len(messages) > 1:
            meta["messages"] = list(messages)  # the record's own conversation (a system_prompt is in the spec)
        text = spoken[0]["content"] if len(spoken) == 1 else "\n\n".join(
            f"{m['role'].capitalize()}: {m['content']}" for m in spoken)
        given = row.get("id")
        has_id = isinstance(given, (str, int)) and not isinstance(given, bool)
        tools = record_tools(row, "messages", where) if isinstance(row, dict) else None
        prompts.append(Prompt(id=str(given) if has_id else record.place, text=text.strip(),
                              messages=messages, where=where, meta=meta, tools=tools))
    return prompts, blank


def _conversation(row: Any, field_name: str | None, where: str) -> tuple[list[dict], str | None]:
    """The messages a model continues, and the reference answer the record holds (or None)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {kind_of(row)}.",
                        f"Write each record as an object with {PROMPT_FIELDS}, or use a .txt file "
                        "(one prompt per line).")
    if field_name is not None:
        if row.get(field_name) is None:
            raise DataError(f"{where}: no field '{field_name}' (prompts.field); this record has {_fields(row)}.",
                            "Name the field that holds the prompt in prompts.field, or leave it empty to detect "
                            f"{PROMPT_FIELDS}.")
        return _split_reference(_messages(row[field_name], where, field_name), where)
    if row.get("prompt") is not None:
        messages, reference = _split_reference(_messages(row["prompt"], where, "prompt"), where)
        completion = row.get("completion")
        return messages, completion if isinstance(completion, str) else reference
    for key in ("messages", "conversations"):
        if isinstance(row.get(key), list):
            return _split_reference(_messages(row[key], where, key), where)
    if isinstance(row.get("instruction"), str):
        extra = row.get("input")
        text = row["instruction"] + (f"\n\n{extra}" if isinstance(extra, str) and extra.strip() else "")
        output = row.get("output")
        return [{"role": "user", "content": text}], output if isinstance(output, str) else None
    raise DataError(f"{where}: no prompt in this record; it has the fields {_fields(row)}.",
                    f"Give each record {PROMPT_FIELDS}, or name the field that holds the prompt in prompts.field.")


def _messages(value: Any, where: str, key: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, list):
        return parse_turns(value, where, key, sharegpt=key == "conversations", tools=True)
    raise DataError(f"{where}: field '{key}' is {kind_of(value)}, not text or a list of messages.",
                    "A prompt is a string (the user's message) or a list of {\"role\", \"content\"} messages.")


def _split_reference(messages: list[dict], where: str) -> tuple[list[dict], str | None]:
    reference = None
    if messages and messages[-1]["role"] == "assistant":
        last = messages[-1]
        reference = calls_text(call_list(last["tool_calls"])) if last.get("tool_calls") else last["content"]
        messages = messages[:-1]
    if not messages or messages[-1]["role"] in ("assistant", "system"):  # a tool's result is answered too
        last = messages[-1]["role"] if messages else "nothing"
        raise DataError(f"{where}: the conversation ends with {last} before the answer, so there is no turn for "
                        f"the model to answer.",
                        "End each prompt's conversation with the user's message (a final assistant turn is kept "
                        "as the reference answer).")
    return messages, reference


def _fields(record: dict) -> str:
    return ", ".join(f"'{k}'" for k in record) or "no fields"

