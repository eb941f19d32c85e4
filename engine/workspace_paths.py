"""References to files of a workspace, as runs store them and read them back.

A workspace can move (another disk, a copy for a colleague): what a run writes down about files
inside its workspace — spec references, artifact and summary paths, the studio's run folders — is
written relative to the workspace (`portable_paths`) and made whole again when read
(`resolve_path`, `resolved_paths`). A reference written before that, absolute and into a run folder
of a workspace that has since moved, is read as the same place in the workspace it is read from.

Imported by the GUI: standard library only.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _is_path_text(value: str) -> bool:
    """Whether a string of a spec or an event can be a file reference at all (not prose, not a URL)."""
    return bool(value) and "\n" not in value and "://" not in value and len(value) < 4096


def portable_path(value: str, workspace: Path | str) -> str:
    """`value` relative to `workspace` (`runs/ID/output/model`, `./corpus.txt`) when it is an
    absolute path inside it; anything else unchanged (a relative path, a hub id, a run id, a path
    outside the workspace)."""
    if not _is_path_text(value) or not (value.startswith("~") or os.path.isabs(value)):
        return value
    path = os.path.expanduser(value)
    for inner, outer in ((os.path.abspath(path), os.path.abspath(workspace)),
                         (os.path.realpath(path), os.path.realpath(workspace))):
        try:
            relative = Path(inner).relative_to(outer).as_posix()
        except ValueError:
            continue
        # A folder in it says "a path": a bare name could be a run id, a hub id or a run's name.
        return relative if "/" in relative or relative == "." else f"./{relative}"
    return value


def resolve_path(value: str, workspace: Path | str) -> str:
    """Where a stored reference is now: a path relative to the workspace made absolute in it; an
    absolute path that no longer exists but lies in a run folder (`…/runs/<id>/…`) of a workspace
    that moved, when this workspace has that run, made that run's; anything else unchanged (an
    existing absolute path, a path relative to the working folder, a run id, a hub id)."""
    if not _is_path_text(value):
        return value
    root = Path(workspace)
    path = Path(value)
    if value == ".":
        return str(root)
    if not path.is_absolute() and not value.startswith("~"):
        if "/" not in value:
            return value  # a name (a run id, a queue, a kind), not a path portable_path wrote
        inside = root / path
        if inside.exists() or (glob.has_magic(value) and glob.glob(str(inside), recursive=True)):
            return str(inside)
        return value
    if path.exists() or glob.has_magic(value):
        return value
    parts = path.parts
    for at in range(len(parts) - 2, 0, -1):
        if parts[at] == "runs" and (root / "runs" / parts[at + 1]).is_dir():
            return str(root.joinpath("runs", *parts[at + 1:]))
    return value


def artifact_path(value: str, workspace: Path | str) -> str:
    """A path an event names (an artifact, a summary's output) where it is now: as `resolve_path`
    says, and a relative one in the workspace even when nothing is there (yet, or any more) — events
    name nothing relative to another folder."""
    resolved = resolve_path(value, workspace)
    if _is_path_text(resolved) and not os.path.isabs(os.path.expanduser(resolved)) and "/" in resolved:
        return str(Path(workspace) / resolved)
    return resolved


def _map_strings(data: Any, convert: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return convert(data)
    if isinstance(data, dict):
        return {key: _map_strings(value, convert) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_map_strings(value, convert) for value in data]
    return data


def portable_paths(data: Any, workspace: Path | str) -> Any:
    """Plain data (a spec, an event's fields) with every path inside `workspace` made relative to it."""
    return _map_strings(data, lambda value: portable_path(value, workspace))


def resolved_paths(data: Any, workspace: Path | str) -> Any:
    """Plain data with every stored reference made a path of `workspace` where it is one (`resolve_path`)."""
    return _map_strings(data, lambda value: resolve_path(value, workspace))


def run_named(reference: str, workspace: Path | str) -> str | None:
    """The id of the run of `workspace` that `reference` names — its id, its folder, or anything
    inside it (an output model, a checkpoint), relative, absolute or from before the workspace
    moved — or None when it names no run of this workspace."""
    if not isinstance(reference, str) or not reference:
        return None
    runs = Path(workspace) / "runs"
    if "/" not in reference and (runs / reference).is_dir():
        return reference
    resolved = os.path.expanduser(artifact_path(reference, workspace))  # a checkpoint rotated away: its run's
    if not os.path.isabs(resolved):
        return None
    for inner, outer in ((os.path.abspath(resolved), os.path.abspath(runs)),
                         (os.path.realpath(resolved), os.path.realpath(runs))):
        try:
            parts = Path(inner).relative_to(outer).parts
        except ValueError:
            continue
        if parts and (runs / parts[0]).is_dir():
            return parts[0]
    return None
