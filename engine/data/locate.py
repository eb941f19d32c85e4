"""Where a spec's data source is: built in, data files (a file, a glob, or a folder searched
recursively, hidden files left out), an entry of LLaMA-Factory's dataset_info.json
(`path/dataset_info.json#name`: its files, their records mapped by llamafactory.py), a folder written by `Dataset.save_to_disk` /
`DatasetDict.save_to_disk`, or a Hugging Face hub dataset id (`hub:owner/name` or `owner/name`,
which needs the network once); and the rows of saved and hub datasets as records (reader.py reads
the files).

Errors name the source and the spec's field and say what to do; a hub dataset that cannot be
loaded offline says so. Light: datasets is imported by the functions that load one.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from engine.data.llamafactory import RegistryEntry, is_registry_source, registry_entry
from engine.data.reader import BATCH, FILE_SUFFIXES, Record, iter_records
from engine.errors import DataError, first_line

SAVED_DATASET_FILES = ("dataset_dict.json", "state.json")  # what `save_to_disk` writes at a folder's top
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class DataSource:
    """One source of a spec, found: built in, data files, a saved dataset, or a hub dataset."""

    given: str  # as the spec writes it
    kind: Literal["builtin", "files", "saved", "hub"]
    files: tuple[Path, ...] = ()
    location: str = ""  # the saved dataset's folder, or the hub id
    missing_locally: bool = False  # a hub id given without `hub:` that is no local path either
    entry: RegistryEntry | None = None  # a dataset_info.json entry: its records are mapped to the default layout

    def records(self, path: Path, **options) -> Iterator[Record]:
        """The records of one of the source's files (the options of reader.iter_records), in the
        default LLaMA-Factory layout when the source is a registry entry."""
        for record in iter_records(path, **options):
            if self.entry is None:
                yield record
            else:
                yield Record(self.entry.record(record.value), record.source, record.unit, record.number, record.line)

    @property
    def name(self) -> str:
        """What messages and records call a dataset source."""
        return f"hub dataset {self.location}" if self.kind == "hub" else self.location or self.given

    @property
    def size_bytes(self) -> int:
        """The bytes on disk (0 for built-in and hub sources), for a progress bar."""
        if self.kind == "saved":
            return sum(p.stat().st_size for p in Path(self.location).rglob("*.arrow"))
        return sum(p.stat().st_size for p in self.files)


def resolve_source(source: str, field: str, builtins: Sequence[str] = ()) -> DataSource:
    """Where `source` (the spec's `field`) is. Raises DataError naming it when there is nothing
    there: no such file or folder, a pattern that matches nothing, a folder without data files,
    an unknown `builtin:` name."""
    if source in builtins:
        return DataSource(source, "builtin")
    if source.startswith("builtin:"):
        known = (f"The built-in sources here are {', '.join(builtins)}." if builtins
                 else "Nothing is built in here: give files, a folder, a saved dataset or a hub dataset id.")
        raise DataError(f"Unknown built-in source '{source}' ({field}).", known)
    if source.startswith("hub:"):
        return DataSource(source, "hub", location=source.removeprefix("hub:"))
    if is_registry_source(source) and not Path(source).expanduser().exists():
        entry = registry_entry(source, field)
        found = resolve_source(str(entry.path), f"{field}: file_name of {entry.name}")
        if found.kind != "files":
            raise DataError(f"The entry '{entry.name}' of {entry.registry} ({field}) names {entry.path}, a "
                            f"{found.kind} dataset, not data files.", "Point file_name at the data files.")
        return DataSource(source, "files", found.files, entry=entry)
    path = Path(source).expanduser()
    if glob.has_magic(source):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise DataError(f"The pattern {source} ({field}) matches no file.",
                            "Check the folder and the pattern (e.g. data/**/*.jsonl for subfolders).")
        return DataSource(source, "files", tuple(files))
    if path.is_dir():
        if any((path / name).exists() for name in SAVED_DATASET_FILES):
            return DataSource(source, "saved", location=str(path))
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FILE_SUFFIXES
                       and not any(part.startswith(".") for part in p.relative_to(path).parts))
        if not files:
            raise DataError(f"The folder {path} ({field}) holds no data file ({' '.join(FILE_SUFFIXES)}).",
                            f"Put data files in it, or point {field} at the files themselves.")
        return DataSource(source, "files", tuple(files))
    if path.is_file():
        return DataSource(source, "files", (path,))
    if _HUB_ID.match(source) and path.suffix.lower() not in FILE_SUFFIXES and not path.parent.is_dir():
        return DataSource(source, "hub", location=source, missing_locally=True)
    raise DataError(f"The data source {source} ({field}) does not exist (no such file or folder).",
                    "Check the path; relative paths start from the folder the engine runs in.")


def open_dataset(source: DataSource, field: str, split: str | None = None, split_field: str = "split",
                 in_memory: bool = True):
    """A saved or hub dataset source as one `datasets.Dataset`: the `split` asked for, else its
    train split or its only one. `in_memory` keeps later caches (map, shuffle) out of a user's
    folder; a reader that only streams the rows can leave it off."""
    import datasets

    if source.kind == "saved":
        try:
            loaded = datasets.load_from_disk(source.location, keep_in_memory=in_memory)
        except Exception as e:  # noqa: BLE001 - a damaged save_to_disk folder raises many types
            raise DataError(f"{source.location} ({field}) looks like a saved dataset but cannot be read: "
                            f"{first_line(e)}.", "Save it again with Dataset.save_to_disk.") from None
    else:
        try:
            loaded = datasets.load_dataset(source.location, split=split) if split else \
                datasets.load_dataset(source.location)
        except Exception as e:  # noqa: BLE001 - offline, unknown id or split, gated repo: all the user's to fix
            raise _hub_error(source, field, split, e, datasets.config.HF_HUB_OFFLINE) from None
    if not hasattr(loaded, "keys"):  # a Dataset, not a DatasetDict
        return loaded
    if split is not None:
        if split not in loaded:
            raise DataError(f"{source.name} has no split '{split}' ({split_field}); it has {', '.join(loaded)}.",
                            f"Set {split_field} to one of those.")
        return loaded[split]
    if "train" in loaded:
        return loaded["train"]
    if len(loaded) == 1:
        return next(iter(loaded.values()))
    raise DataError(f"{source.name} ({field}) has several splits and none is called 'train' ({', '.join(loaded)}).",
                    "Save the split to use on its own, or name it 'train'.")


def _hub_error(source: DataSource, field: str, split: str | None, error: BaseException, offline: bool) -> DataError:
    what = f"split '{split}' of the hub dataset '{source.location}'" if split else f"the hub dataset '{source.location}'"
    local = f" There is no local file or folder named {source.given} either." if source.missing_locally else ""
    if offline:
        return DataError(f"Could not load {what} ({field}): HF_HUB_OFFLINE=1 is set, so nothing is downloaded, and it "
                         f"is not in the local cache ({first_line(error)}).{local}",
                         "Unset HF_HUB_OFFLINE with the network on to download it once, or use local files.")
    return DataError(f"Could not load {what} ({field}): {first_line(error)}.{local}",
                     "Check the dataset id" + (", the split" if split else "") + " and the network, or use local "
                     "files.")


def dataset_records(dataset, name: str, columns: Sequence[str] | None = None) -> Iterator[Record]:
    """The rows of a `datasets.Dataset` as records (`columns`: only those of its columns), read a
    batch at a time."""
    if columns is not None:
        dataset = dataset.select_columns([c for c in columns if c in dataset.column_names])
    number = 0
    for batch in dataset.iter(batch_size=BATCH):
        keys = list(batch)
        for i in range(len(batch[keys[0]]) if keys else 0):
            number += 1
            yield Record({key: batch[key][i] for key in keys}, name, "row", number)
