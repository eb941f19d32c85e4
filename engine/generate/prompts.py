"""The prompts of a generate job: read from files, datasets or the task generator into `Prompt`s.

A source is one of:
- `builtin:tasks`: generated tasks with checkable answers (prompts.task, task_examples, task_seed);
- a .txt file: one prompt per line (blank lines skipped);
- a .jsonl .json .csv .parquet file, a glob or a folder of them: one record per prompt, whose prompt
  is in `prompt` (text, or a list of messages), `messages`, `conversations` (ShareGPT) or
  `instruction` (+ `input`), or in the field prompts.field names. A conversation that ends with an
  assistant turn gives that turn as the reference answer (as `completion` and `output` do);
- a dataset saved with `save_to_disk`, or a hub dataset id (`hub:owner/name` or `owner/name`),
  read at prompts.split.

Bad input raises DataError naming the file, the line (or row) and the fields the record has.
datasets is imported only for the sources that need it.
"""

from __future__ import annotations

import glob
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError
# The fine-tuning data's readers and message parser: the same file types and the same messages
# for broken files and malformed conversations.
from engine.finetune.formats import _turns
from engine.finetune.records import FILE_SUFFIXES, _load_file, _Part, _read_utf8
from engine.finetune.rendering import prompt_ids, text_ids
from engine.generate_specs import PromptSource

BUILTIN_TASKS = "builtin:tasks"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
PROMPT_FIELDS = "'prompt' (text or a list of messages), 'messages', 'conversations', or 'instruction' (+ 'input')"


@dataclass
class Prompt:
    id: str  # the record's `id` when it has one, else where it came from (`file.jsonl:12`, `file.parquet:#3`)
    text: str  # what annotators read: the user's message, or the conversation written out
    messages: list[dict]  # the conversation a chat model continues (system, earlier turns, the user's turn)
    where: str  # "file.jsonl, line 12", for messages
    meta: dict = field(default_factory=dict)  # source; reference; task, input and answer for built-in tasks


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
        system = [m["content"] for m in prompt.messages if m["role"] == "system"]
        return text_ids("\n\n".join([*system, prompt.text]), tokenizer)
    record = {"messages": [*prompt.messages, {"role": "assistant", "content": "x"}], "where": prompt.where}
    return prompt_ids(record, tokenizer, template)


def _read_source(name: str, source: PromptSource, seed: int) -> tuple[list[Prompt], int]:
    if name == BUILTIN_TASKS:
        return _task_prompts(source, seed), 0
    if name.startswith("builtin:"):
        raise DataError(f"Unknown built-in prompts '{name}' (prompts.sources).",
                        f"The built-in prompts are {BUILTIN_TASKS} (choose the task with prompts.task).")
    if name.startswith("hub:"):
        return _records(_load_hub(name[len("hub:"):], source.split), source.field)
    path = Path(name).expanduser()
    if glob.has_magic(name):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"The pattern {name} (prompts.sources) matches no file.",
                            "Check the folder and the pattern (e.g. prompts/**/*.jsonl for subfolders).")
        return _files(files, source.field)
    if path.is_dir():
        if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
            return _records(_load_saved(path, source.split), source.field)
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"The folder {path} (prompts.sources) holds no prompt file ({' '.join(FILE_SUFFIXES)}).",
                            "Put prompt files in it, or point prompts.sources at the files themselves.")
        return _files(files, source.field)
    if path.is_file():
        return _files([path], source.field)
    if _HUB_ID.match(name) and "/" in name and path.suffix.lower() not in FILE_SUFFIXES:
        return _records(_load_hub(name, source.split, also_missing_locally=True), source.field)
    raise DataError(f"The prompt file {name} (prompts.sources) does not exist.",
                    "Check the path; relative paths start from the folder the engine runs in.")


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


def _files(paths: list[Path], field_name: str | None) -> tuple[list[Prompt], int]:
    prompts, blank = [], 0
    for path in paths:
        if path.suffix.lower() == ".txt":
            found, skipped = _lines(path)
        elif path.suffix.lower() in FILE_SUFFIXES:
            found, skipped = _records(_load_file(path), field_name)
        else:
            raise DataError(f"{path} (prompts.sources): unsupported file type '{path.suffix or '(none)'}'.",
                            f"Use one of {' '.join(FILE_SUFFIXES)}.")
        prompts.extend(found)
        blank += skipped
    return prompts, blank


def _lines(path: Path) -> tuple[list[Prompt], int]:
    prompts, blank = [], 0
    for number, line in enumerate(_read_utf8(path).splitlines(), start=1):
        if not line.strip():
            blank += 1
            continue
        prompts.append(Prompt(id=f"{path.name}:{number}", text=line.strip(),
                              messages=[{"role": "user", "content": line.strip()}], where=f"{path}, line {number}",
                              meta={"source": str(path)}))
    return prompts, blank


def _records(part: _Part, field_name: str | None) -> tuple[list[Prompt], int]:
    prompts, blank = [], 0
    for i, row in enumerate(part.rows):
        where = part.where(i)
        messages, reference = _conversation(row, field_name, where)
        if not any((m.get("content") or "").strip() for m in messages if m["role"] != "system"):
            blank += 1
            continue
        meta: dict[str, Any] = {"source": part.name}
        if reference is not None:
            meta["reference"] = reference
        spoken = [m for m in messages if m["role"] != "system"]
        if len(messages) > 1:
            meta["messages"] = list(messages)  # the record's own conversation (a system_prompt is in the spec)
        text = spoken[0]["content"] if len(spoken) == 1 else "\n\n".join(
            f"{m['role'].capitalize()}: {m['content']}" for m in spoken)
        place = f"{Path(part.name).name}:{part.numbers[i]}" if part.numbers else f"{Path(part.name).name}:#{i}"
        given = row.get("id")
        has_id = isinstance(given, (str, int)) and not isinstance(given, bool)
        prompts.append(Prompt(id=str(given) if has_id else place, text=text.strip(),
                              messages=messages, where=where, meta=meta))
    return prompts, blank


def _conversation(row: Any, field_name: str | None, where: str) -> tuple[list[dict], str | None]:
    """The messages a model continues, and the reference answer the record holds (or None)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a record (a JSON object with named fields), found {type(row).__name__}.",
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
        return _turns(value, where, key, sharegpt=key == "conversations")
    raise DataError(f"{where}: field '{key}' is a {type(value).__name__}, not text or a list of messages.",
                    "A prompt is a string (the user's message) or a list of {\"role\", \"content\"} messages.")


def _split_reference(messages: list[dict], where: str) -> tuple[list[dict], str | None]:
    reference = None
    if messages and messages[-1]["role"] == "assistant":
        reference = messages[-1]["content"]
        messages = messages[:-1]
    if not messages or messages[-1]["role"] in ("assistant", "system"):
        last = messages[-1]["role"] if messages else "nothing"
        raise DataError(f"{where}: the conversation ends with {last} before the answer, so there is no turn for "
                        f"the model to answer.",
                        "End each prompt's conversation with the user's message (a final assistant turn is kept "
                        "as the reference answer).")
    return messages, reference


def _load_saved(folder: Path, split: str) -> _Part:
    import datasets

    try:
        loaded = datasets.load_from_disk(str(folder), keep_in_memory=True)
    except Exception as e:  # noqa: BLE001 - a damaged save_to_disk folder raises many types
        raise DataError(f"{folder} (prompts.sources) looks like a saved dataset but cannot be read: {_first_line(e)}",
                        "Save it again with Dataset.save_to_disk.") from None
    if hasattr(loaded, "keys"):  # a DatasetDict: the split asked for
        if split not in loaded:
            raise DataError(f"{folder} has no split '{split}' (prompts.split); it has {', '.join(loaded)}.",
                            "Set prompts.split to one of those.")
        loaded = loaded[split]
    return _Part(str(folder), loaded.to_list(), "row")


def _load_hub(name: str, split: str, also_missing_locally: bool = False) -> _Part:
    import datasets

    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as e:  # noqa: BLE001 - offline, unknown id or split, gated repo: all are the user's to fix
        local = f" There is no local file or folder named {name} either." if also_missing_locally else ""
        raise DataError(f"Could not load split '{split}' of the hub dataset '{name}' (prompts.sources): "
                        f"{_first_line(e)}.{local}",
                        "Check the dataset id, prompts.split and the network (HF_HUB_OFFLINE=1 forbids "
                        "downloads), or use local files.") from None
    return _Part(f"hub dataset {name}", loaded.to_list(), "row")


def _fields(record: dict) -> str:
    return ", ".join(f"'{k}'" for k in record) or "no fields"


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
