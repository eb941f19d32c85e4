"""A generate run's answers as a labeling batch: `output/candidates.jsonl` imported into a queue.

The generate job writes one line per prompt:
    {"id": str, "prompt": str, "candidates": [{"text", "model", "seed", "meta"}, …], "meta": {…}}
A pair queue gets one item per pair of a prompt's candidates (n(n-1)/2 items), a ranking queue one
item with them all. Candidates with the same text are one answer to a person, so they are collapsed
first (the item keeps where each copy came from). A chat prompt's system turn and earlier turns
travel in the line's meta as "messages" (a list of {"role", "content"} ending with the user's turn,
as the generate job writes it) or "system" (a text), and are kept for the conversational exports.

Imported by the GUI: the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Any

from engine.data.reader import iter_records
from engine.errors import DataError
from engine.labeling.records import Problem
from engine.labeling.store import Candidate, LabelStore, Queue

CANDIDATES_FILE = "candidates.jsonl"


@dataclass
class BatchReport:
    """What a batch import did with every prompt of the file."""

    path: Path
    queue: str
    mode: str
    prompts: int  # lines read, readable or not
    added: int  # items added to the queue
    duplicates: list[Problem] = field(default_factory=list)  # items already in the queue
    collapsed: int = 0  # candidates dropped because another candidate of the prompt has the same text
    skipped: list[Problem] = field(default_factory=list)  # prompts with fewer than two different answers
    malformed: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"path": str(self.path), "queue": self.queue, "mode": self.mode, "prompts": self.prompts,
                "added": self.added, "duplicates": [p.to_json() for p in self.duplicates],
                "collapsed": self.collapsed, "skipped": [p.to_json() for p in self.skipped],
                "malformed": [p.to_json() for p in self.malformed]}


def candidates_path(source: str | Path, workspace: Path | None = None) -> Path:
    """The candidates file of a run id, a run folder, or the file itself."""
    path = Path(source).expanduser()
    if path.is_file():
        return path
    for folder in (path, path / "output"):
        if (folder / CANDIDATES_FILE).is_file():
            return folder / CANDIDATES_FILE
    if path.is_dir():
        raise DataError(f"No {CANDIDATES_FILE} in {path} or {path / 'output'}.",
                        "Point at a generate run that has finished, or at its candidates file.")
    if workspace is not None:
        from engine.rundir import find_run  # light module; imported here to keep this one's imports minimal

        try:
            run = find_run(workspace, str(source))
        except LookupError as e:
            raise DataError(f"No file, folder or run {str(source)!r}: {e.args[0]}",
                            "Give a generate run's id, its folder, or a candidates.jsonl file.") from None
        found = run.output_dir / CANDIDATES_FILE
        if found.is_file():
            return found
        raise DataError(f"Run {run.run_id} has no {CANDIDATES_FILE} in {run.output_dir}.",
                        "Only generate runs write one, when they finish; `studio-engine show "
                        f"{run.run_id}` tells its state.")
    raise DataError(f"No file or folder {str(source)!r}.", "Give a generate run's id, its folder, or a candidates file.")


def import_batch(store: LabelStore, queue: Queue | str, source: str | Path, *,
                 workspace: Path | None = None, create_mode: str | None = None) -> BatchReport:
    """Import a generate run's candidates (run id, run folder or candidates.jsonl) into `queue` (made,
    in `create_mode`, with the first items when there is none by that name and a mode is given).

    Nothing is dropped unreported: unreadable lines, prompts with fewer than two different answers
    and items already in the queue come back with their line numbers.
    """
    q = store.queue_for_import(queue, create_mode)
    path = candidates_path(source, workspace)
    run_id = path.parent.parent.name if path.parent.name == "output" else None
    report = BatchReport(path=path, queue=q.name, mode=q.mode, prompts=0, added=0)
    items: list[dict] = []
    wheres: list[str] = []

    def unreadable(where: str, problem: str, hint: str) -> None:
        report.prompts += 1
        report.malformed.append(Problem(where, problem))

    for record in iter_records(path, source=path.name, on_problem=unreadable):
        report.prompts += 1
        where, number = record.where, record.number
        try:
            prompt, candidates, meta = _parse_record(record.value)
        except ValueError as e:
            report.malformed.append(Problem(where, str(e)))
            continue
        distinct, collapsed = _collapse(candidates)
        report.collapsed += collapsed
        if len(distinct) < 2 and q.mode != "single":
            report.skipped.append(Problem(where, f"only {len(distinct)} different answer"
                                                 f"{'s' if len(distinct) != 1 else ''} ({len(candidates)} candidates): "
                                                 "nothing to compare"))
            continue
        meta["batch"] = {"file": str(path), "line": number, **({"run": run_id} if run_id else {})}
        groups = ([distinct] if q.mode == "rank" else [[c] for c in distinct] if q.mode == "single"
                  else [list(p) for p in combinations(distinct, 2)])
        for group in groups:
            items.append({"prompt": prompt, "candidates": [c.to_json() for c in group], "meta": meta})
            wheres.append(where)
    added = store.add_items(q, items)
    report.added = added.added
    for index in added.duplicates:
        shown = " / ".join(_clip(c["text"]) for c in items[index]["candidates"])
        report.duplicates.append(Problem(wheres[index], f"already in queue {q.name!r} ({shown})"))
    return report


def _parse_record(raw: Any) -> tuple[str, list[Candidate], dict]:
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object with prompt and candidates")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("the prompt is missing or empty")
    raw_candidates = raw.get("candidates")
    if not isinstance(raw_candidates, list):
        raise ValueError("candidates must be a list of {\"text\", \"model\", \"seed\", \"meta\"}")
    candidates = []
    for i, c in enumerate(raw_candidates, start=1):
        if isinstance(c, str):
            c = {"text": c}
        if not isinstance(c, dict) or not isinstance(c.get("text"), str):
            raise ValueError(f"candidate {i} has no text")
        if c.get("seed") is not None and not isinstance(c["seed"], int):
            raise ValueError(f"the seed of candidate {i} is not a whole number")
        if not isinstance(c.get("meta") or {}, dict):
            raise ValueError(f"the meta of candidate {i} is not an object")
        candidates.append(Candidate.from_json(c))
    meta = raw.get("meta") or {}
    if not isinstance(meta, dict):
        raise ValueError("meta is not an object")
    meta = dict(meta)
    if raw.get("id") is not None:
        meta["prompt_id"] = raw["id"]
    return prompt, candidates, meta


def _collapse(candidates: list[Candidate]) -> tuple[list[Candidate], int]:
    """Candidates with distinct texts, in order; each keeps the model/seed of its copies in meta."""
    kept: dict[str, Candidate] = {}
    copies: dict[str, list[dict]] = {}
    for c in candidates:
        if c.text in kept:
            copies[c.text].append({"model": c.model, "seed": c.seed})
        else:
            kept[c.text] = c
            copies[c.text] = []
    distinct = [Candidate(text=c.text, model=c.model, seed=c.seed,
                          meta={**c.meta, "same_text_from": copies[t]} if copies[t] else c.meta)
                for t, c in kept.items()]
    return distinct, len(candidates) - len(distinct)


def _clip(text: str, width: int = 30) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"
