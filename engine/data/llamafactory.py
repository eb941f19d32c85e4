"""LLaMA-Factory's dataset registry as a data source: `path/to/dataset_info.json#name` reads the
files of the entry `name` and gives their records in LLaMA-Factory's default layout, which every
reader of records here knows (the fine-tuning formats alpaca and sharegpt, the preference formats,
KTO's kto_tag).

An entry (LLaMA-Factory's data/README.md) names its data with `file_name` (a file or a folder,
relative to the folder of dataset_info.json), its layout with `formatting` (alpaca, the default, or
sharegpt), preference pairs with `ranking`, and its own field names with `columns` (alpaca: prompt,
query, response, history, system, chosen, rejected, kto_tag; sharegpt: messages, system, tools,
chosen, rejected, kto_tag) and, for sharegpt, `tags` (role_tag, content_tag and the role names
user_tag, assistant_tag, observation_tag, function_tag, system_tag). Each record is rewritten under
the default names (instruction/input/output/…, conversations of {"from", "value"} with the roles
human, gpt, observation, function_call, system), so one reader serves both.

Entries without local files (hf_hub_url, ms_hub_url, om_hub_url, script_url) and entries with
images, videos or audios are refused with a message saying what to do. Light: the standard library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import DataError

SEPARATOR = "#"
ALPACA_COLUMNS = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
                  "system": "system", "chosen": "chosen", "rejected": "rejected", "kto_tag": "kto_tag"}
SHAREGPT_COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools", "chosen": "chosen",
                    "rejected": "rejected", "kto_tag": "kto_tag"}
SHAREGPT_TAGS = {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt",
                 "observation_tag": "observation", "function_tag": "function_call", "system_tag": "system"}
_HUB_KEYS = ("hf_hub_url", "ms_hub_url", "om_hub_url", "script_url")
_MEDIA_COLUMNS = ("images", "videos", "audios")


@dataclass(frozen=True)
class RegistryEntry:
    """One entry of a dataset_info.json: where its files are and how its records map to the default layout."""

    registry: Path
    name: str
    path: Path  # its file_name, resolved: a file or a folder
    formatting: str
    ranking: bool
    columns: dict[str, str]  # LLaMA-Factory's column key -> the record's field
    tags: dict[str, str] = field(default_factory=dict)  # sharegpt only: LLaMA-Factory's tag key -> the record's value
    ignored: tuple[str, ...] = ()  # keys of the entry Atelier does not honour (num_samples, split, …)

    @property
    def source(self) -> str:
        return f"{self.registry}{SEPARATOR}{self.name}"

    def record(self, value: Any) -> Any:
        """`value` under LLaMA-Factory's default field names and roles (anything but an object as it is)."""
        if not isinstance(value, dict):
            return value
        defaults = ALPACA_COLUMNS if self.formatting == "alpaca" else SHAREGPT_COLUMNS
        out = {}
        for key, default in defaults.items():
            column = self.columns.get(key, default)
            if column in value:
                out[default] = value[column]
        if self.formatting == "sharegpt":
            for key in ("conversations", "chosen", "rejected"):
                if key in out:
                    out[key] = self._turns(out[key])
        return out

    def _turns(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self._turns(turn) for turn in value]
        if not isinstance(value, dict):
            return value
        role_key = self.tags.get("role_tag", SHAREGPT_TAGS["role_tag"])
        content_key = self.tags.get("content_tag", SHAREGPT_TAGS["content_tag"])
        roles = {self.tags.get(tag, default): default for tag, default in SHAREGPT_TAGS.items()
                 if tag not in ("role_tag", "content_tag")}
        role = value.get(role_key)
        return {"from": roles.get(role, role), "value": value.get(content_key)}


def is_registry_source(source: str) -> bool:
    """Whether `source` names an entry of a dataset registry: `….json#name`."""
    path, separator, name = source.rpartition(SEPARATOR)
    return bool(separator and name and path.lower().endswith(".json"))


def registry_names(path: Path | str) -> dict[str, str]:
    """The entries of a dataset_info.json: name -> what it is ("alpaca, ranking, data/x.json"), or why
    Atelier cannot use it."""
    names = {}
    for name, raw in _registry(Path(path), "the dataset registry").items():
        try:
            entry = _entry(Path(path), name, raw, "the picker")
        except DataError as e:
            names[name] = f"cannot be used: {e.message}"
            continue
        what = [entry.formatting] + (["ranking"] if entry.ranking else []) + (
            ["kto_tag"] if "kto_tag" in entry.columns else [])
        names[name] = f"{', '.join(what)}; {entry.path.name}"
    return names


def registry_entry(source: str, field_name: str) -> RegistryEntry:
    """The entry `source` (`path/dataset_info.json#name`, the spec's `field_name`) names. Raises
    DataError naming the registry, the entry and what to do."""
    path_text, _, name = source.rpartition(SEPARATOR)
    path = Path(path_text).expanduser()
    entries = _registry(path, field_name)
    if name not in entries:
        known = ", ".join(sorted(entries)) or "(none)"
        raise DataError(f"The dataset registry {path} ({field_name}) has no entry '{name}'; its entries: {known}.",
                        f"Write one of those after '{SEPARATOR}'.")
    return _entry(path, name, entries[name], field_name)


def _registry(path: Path, field_name: str) -> dict:
    if not path.is_file():
        raise DataError(f"The dataset registry {path} ({field_name}) does not exist.",
                        "Give the path of LLaMA-Factory's dataset_info.json (usually data/dataset_info.json).")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"The dataset registry {path} ({field_name}) is not readable JSON: {e}.",
                        "Fix the file (LLaMA-Factory reads it with json.load too).") from None
    if not isinstance(data, dict):
        raise DataError(f"The dataset registry {path} ({field_name}) is not a JSON object of entries.",
                        "A dataset_info.json maps each dataset name to its entry: {\"name\": {\"file_name\": …}}.")
    return data


def _entry(path: Path, name: str, raw: Any, field_name: str) -> RegistryEntry:
    where = f"entry '{name}' of {path} ({field_name})"
    if not isinstance(raw, dict):
        raise DataError(f"The {where} is not a JSON object.", "Each entry is {\"file_name\": …, \"formatting\": …}.")
    if "file_name" not in raw:
        hub = next((key for key in _HUB_KEYS if key in raw), None)
        if hub == "script_url":
            raise DataError(f"The {where} is a loading script ({raw[hub]}), which Atelier does not run.",
                            "Convert the data to a JSON, JSON lines, CSV or Parquet file and set file_name.")
        if hub is not None:
            hint = (f"Give hub:{raw[hub]} as a source instead (it needs the network once; fields in the default "
                    "layout), or download the files and set file_name." if hub == "hf_hub_url" else
                    "Download the files and set file_name: Atelier reads Hugging Face hub datasets only.")
            raise DataError(f"The {where} is a hub dataset ({hub}: {raw[hub]}), not local files.", hint)
        raise DataError(f"The {where} has no file_name.", "Set file_name to the data file, relative to the registry.")
    formatting = raw.get("formatting", "alpaca")
    if formatting not in ("alpaca", "sharegpt"):
        raise DataError(f"The {where} has formatting '{formatting}'.", "Use alpaca or sharegpt (LLaMA-Factory's two).")
    columns = raw.get("columns") or {}
    tags = raw.get("tags") or {}
    if not isinstance(columns, dict) or not isinstance(tags, dict):
        raise DataError(f"The columns and tags of the {where} must be JSON objects.",
                        "e.g. \"columns\": {\"prompt\": \"question\", \"response\": \"answer\"}.")
    media = [key for key in _MEDIA_COLUMNS if key in columns]
    if media:
        raise DataError(f"The {where} has {', '.join(media)}: Atelier trains text-only models.",
                        "Use an entry without images, videos or audios (or remove those columns to train on the "
                        "text alone).")
    known = set(ALPACA_COLUMNS if formatting == "alpaca" else SHAREGPT_COLUMNS)
    unknown = sorted(set(columns) - known)
    if unknown:
        raise DataError(f"The {where} maps columns {', '.join(unknown)}, which {formatting} entries do not have.",
                        f"{formatting} columns are: {', '.join(sorted(known))}.")
    file = (path.parent / str(raw["file_name"])).expanduser()
    if not file.exists():
        raise DataError(f"The {where} names file_name {raw['file_name']}, but {file} does not exist.",
                        "file_name is relative to the folder of dataset_info.json; check it.")
    ignored = tuple(sorted(k for k in raw if k not in ("file_name", "formatting", "ranking", "columns", "tags",
                                                       "file_sha1", "load_from")))
    return RegistryEntry(path, name, file, formatting, bool(raw.get("ranking", False)),
                         {str(k): str(v) for k, v in columns.items()}, {str(k): str(v) for k, v in tags.items()},
                         ignored)
