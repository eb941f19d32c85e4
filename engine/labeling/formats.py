"""Preference data in and out of labeling queues: labels to (prompt, chosen, rejected) pairs and files.

Export reads each label's `ranking` (candidate terms, best first), never the side an answer was
shown on, so the display order that was randomised against position bias leaves no trace in the data.
Import turns each record into an item with two candidates, chosen first, and (unless asked for
unlabeled pairs) a label of kind "import" saying the chosen one is better, so exporting an imported
file in its own format gives the file back. A file of answers judged one at a time (good or bad) goes
into a single-answer queue, one item per answer, its import label the file's verdict.

How each format spells a record is in `records.py` (pairs) and `unpaired.py` (judged answers). Imported by the GUI: the standard library only.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from engine.errors import DataError
from engine.labeling.records import (EXPORT_FORMATS, PreferenceRecord, Problem, answer, answer_text, export_problem,
                                     flattened_by, format_record, is_plain_answer, is_plain_prompt, line_of,
                                     prompt_text, read_records, user_prompt)
from engine.labeling.store import Candidate, Item, Label, LabelStore, LabelStoreError, Queue, item_key
from engine.labeling.unpaired import read_unpaired_file
from engine.rundir import atomic_file

POLICIES = ("majority", "unanimous", "all")
POLICY_HELP = ("how several annotators' labels of one item become pairs: majority (more than half agree; "
               "the default), unanimous (all agree), all (every label gives its own pairs)")


@dataclass(frozen=True)
class PreferencePair:
    """One preference ready for training: the prompt, the better and the worse candidate."""

    item_id: int
    prompt: str
    prompt_messages: list[dict]
    chosen: Candidate
    rejected: Candidate
    votes: int  # labels that put chosen above rejected

    def record(self) -> PreferenceRecord:
        return PreferenceRecord(prompt=self.prompt, prompt_messages=self.prompt_messages,
                                chosen=candidate_messages(self.chosen), rejected=candidate_messages(self.rejected))


@dataclass(frozen=True)
class PreferencePairs:
    """The pairs a queue's labels give, and what was left out and why.

    `ties`, `both_bad` and `conflicts` count candidate pairs (one per pair item, n(n-1)/2 per
    ranking item of n candidates); `unlabeled` and `skipped` count items.
    """

    pairs: list[PreferencePair]
    policy: str
    items: int
    labels: int  # active labels read (skips included)
    unlabeled: int  # items nobody has labeled
    skipped: int  # items whose every label is a skip
    ties: int
    both_bad: int
    conflicts: int  # no majority (or, unanimous, not all the same)

    def to_json(self) -> dict:
        return {"pairs": len(self.pairs), "policy": self.policy, "items": self.items, "labels": self.labels,
                "unlabeled": self.unlabeled, "skipped": self.skipped, "ties": self.ties, "both_bad": self.both_bad,
                "conflicts": self.conflicts}


@dataclass(frozen=True)
class ExportReport:
    path: Path
    format: str
    written: int
    summary: PreferencePairs
    left_out: list[Problem] = field(default_factory=list)  # pairs the format cannot hold, and why
    flattened: int = 0  # pairs whose turns the format wrote as one prompt text and one answer text

    def to_json(self) -> dict:
        return {"path": str(self.path), "format": self.format, "written": self.written,
                "summary": self.summary.to_json(), "left_out": [p.to_json() for p in self.left_out],
                "flattened": self.flattened}


@dataclass
class ImportReport:
    """What an import did with every record of the file: added, or reported with where it is."""

    path: Path
    queue: str
    format: str
    records: int  # in the file, readable or not
    added: int
    labeled: int
    annotator: str | None  # who the import labels are from; None for --unlabeled
    duplicates: list[Problem] = field(default_factory=list)
    malformed: list[Problem] = field(default_factory=list)
    good: int | None = None  # of a file of judged answers: the added answers judged good

    def to_json(self) -> dict:
        return {"path": str(self.path), "queue": self.queue, "format": self.format, "records": self.records,
                "added": self.added, "labeled": self.labeled, "annotator": self.annotator, "good": self.good,
                "duplicates": [p.to_json() for p in self.duplicates],
                "malformed": [p.to_json() for p in self.malformed]}


# -- what an item's prompt and candidates are as chat messages -----------------------------------

def prompt_messages_of(item: Item) -> list[dict]:
    """The item's prompt as chat messages: a system turn and earlier turns from `meta["prompt_messages"]`
    (imports), `meta["messages"]` (generate runs) or a `meta["system"]` text when it has them, else
    the prompt as one user turn."""
    for key in ("prompt_messages", "messages"):
        stored = item.meta.get(key)
        if isinstance(stored, list) and stored and all(isinstance(m, dict) and "role" in m for m in stored):
            return stored
    system = item.meta.get("system")
    if isinstance(system, str) and system:
        return [{"role": "system", "content": system}] + user_prompt(item.prompt)
    return user_prompt(item.prompt)


def candidate_messages(candidate: Candidate) -> list[dict]:
    """A candidate as the messages of its answer (`meta["answer_messages"]` when it has several)."""
    stored = candidate.meta.get("answer_messages")
    if isinstance(stored, list) and stored:
        return stored
    return answer(candidate.text)


def candidate_from_messages(messages: list[dict]) -> Candidate:
    if is_plain_answer(messages):
        return Candidate(text=messages[0]["content"])
    return Candidate(text=answer_text(messages), meta={"answer_messages": messages})


# -- labels to pairs ---------------------------------------------------------------------------

def preference_pairs(store: LabelStore, queue: Queue | str, *, policy: str = "majority",
                     kinds: tuple[str, ...] | None = None) -> PreferencePairs:
    """The (prompt, chosen, rejected) pairs a queue's labels give, in queue order.

    A rank label gives every pair its ranking implies. When several annotators labeled an item,
    each pair of its candidates is decided by `policy` (see POLICY_HELP); ties, "both bad", skips
    and pairs without a decision are left out and counted. `kinds` keeps only labels of those
    kinds (human, checker, import).
    """
    if policy not in POLICIES:
        raise DataError(f"Unknown policy {policy!r}.", f"Use one of: {', '.join(POLICIES)}.")
    q = store.queue(queue) if not isinstance(queue, Queue) else queue
    by_item: dict[int, list[Label]] = defaultdict(list)
    labels = [l for l in store.labels(q) if kinds is None or l.kind in kinds]
    for label in labels:
        by_item[label.item_id].append(label)
    pairs: list[PreferencePair] = []
    counts: Counter[str] = Counter()
    items = store.items(q)
    for item in items:
        votes = [l for l in by_item.get(item.id, []) if l.verdict != "skip"]
        if not votes:
            counts["skipped" if by_item.get(item.id) else "unlabeled"] += 1
            continue
        messages = prompt_messages_of(item)
        for better, worse, support in _decide(item, votes, policy, counts):
            pairs.append(PreferencePair(item_id=item.id, prompt=item.prompt, prompt_messages=messages,
                                        chosen=item.candidates[better], rejected=item.candidates[worse],
                                        votes=support))
    return PreferencePairs(pairs=pairs, policy=policy, items=len(items), labels=len(labels),
                           unlabeled=counts["unlabeled"], skipped=counts["skipped"], ties=counts["tie"],
                           both_bad=counts["both_bad"], conflicts=counts["conflict"])


@dataclass(frozen=True)
class JudgedAnswer:
    """One answer of a single-answer queue and its verdict: good (desirable) or bad."""

    item_id: int
    prompt_messages: list[dict]
    answer: Candidate
    good: bool
    votes: int  # labels that gave this verdict


@dataclass(frozen=True)
class JudgedAnswers:
    answers: list[JudgedAnswer]
    unlabeled: int  # items nobody has judged
    skipped: int  # items only skipped
    conflicts: int  # items whose good and bad votes no policy decides


def judged_answers(store: LabelStore, queue: Queue | str, *, policy: str = "majority") -> JudgedAnswers:
    """The good and bad verdicts of a single-answer queue, in queue order; several annotators' votes
    on one item are decided by `policy` as pairs are (see POLICY_HELP)."""
    if policy not in POLICIES:
        raise DataError(f"Unknown policy {policy!r}.", f"Use one of: {', '.join(POLICIES)}.")
    q = store.queue(queue) if not isinstance(queue, Queue) else queue
    by_item: dict[int, list[Label]] = defaultdict(list)
    for label in store.labels(q):
        by_item[label.item_id].append(label)
    answers: list[JudgedAnswer] = []
    counts: Counter[str] = Counter()
    for item in store.items(q):
        votes = Counter(l.verdict for l in by_item.get(item.id, []) if l.verdict in ("good", "bad"))
        if not votes:
            counts["skipped" if by_item.get(item.id) else "unlabeled"] += 1
            continue
        messages = prompt_messages_of(item)
        if policy == "all":
            answers += [JudgedAnswer(item.id, messages, item.candidates[0], verdict == "good", 1)
                        for verdict, n in votes.items() for _ in range(n)]
            continue
        verdict, support = votes.most_common(1)[0]
        total = sum(votes.values())
        if support * 2 <= total or (policy == "unanimous" and support != total):
            counts["conflict"] += 1
            continue
        answers.append(JudgedAnswer(item.id, messages, item.candidates[0], verdict == "good", support))
    return JudgedAnswers(answers, counts["unlabeled"], counts["skipped"], counts["conflict"])


def _decide(item: Item, votes: list[Label], policy: str, counts: Counter) -> list[tuple[int, int, int]]:
    """(better, worse, supporting labels) for each pair of the item's candidates the votes decide."""
    decided = []
    for i, j in combinations(range(len(item.candidates)), 2):
        opinions = [pair_opinion(label, i, j) for label in votes]
        opinions = [o for o in opinions if o is not None]
        if not opinions:
            continue
        if policy == "all":
            tally = Counter(opinions)
            for outcome in ((i, j), (j, i)):
                if tally[outcome]:
                    decided.extend([(outcome[0], outcome[1], 1)] * tally[outcome])
            counts["tie"] += tally["tie"]
            counts["both_bad"] += tally["both_bad"]
            continue
        outcome, support = Counter(opinions).most_common(1)[0]
        needed = len(opinions) if policy == "unanimous" else len(opinions) // 2 + 1
        if support < needed:
            counts["conflict"] += 1
        elif isinstance(outcome, tuple):
            decided.append((outcome[0], outcome[1], support))
        else:
            counts[outcome] += 1
    return decided


def pair_opinion(label: Label, i: int, j: int) -> tuple[int, int] | str | None:
    """What one label says about candidates i and j: (better, worse), "tie" or "both_bad"."""
    if label.ranking:
        if i not in label.ranking or j not in label.ranking:
            return None
        return (i, j) if label.ranking.index(i) < label.ranking.index(j) else (j, i)
    return label.verdict if label.verdict in ("tie", "both_bad") else None


# -- files ---------------------------------------------------------------------------------------

def export_preferences(store: LabelStore, queue: Queue | str, path: Path | str, fmt: str, *,
                       policy: str = "majority", kinds: tuple[str, ...] | None = None) -> ExportReport:
    """Write the queue's preference pairs to `path` as JSON lines in `fmt` (trl, trl-chat or hh).

    The file appears complete or not at all (written under a temporary name, then renamed over `path`,
    which must be a regular file or a new path). A pair the format cannot hold so that it reads back
    the same is left out and listed; pairs whose turns the trl format flattens are counted.
    """
    if fmt not in EXPORT_FORMATS:
        raise DataError(f"Cannot export to {fmt!r}.", f"Export formats: {', '.join(EXPORT_FORMATS)}.")
    result = preference_pairs(store, queue, policy=policy, kinds=kinds)
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise DataError(f"{path} is a folder.", "Give the file to write, e.g. --out prefs.jsonl.")
    path.parent.mkdir(parents=True, exist_ok=True)
    left_out: list[Problem] = []
    written = flattened = 0
    with atomic_file(path) as f:
        for pair in result.pairs:
            record = pair.record()
            problem = export_problem(fmt, record)
            if problem:
                left_out.append(Problem(f"item {pair.item_id}", problem))
                continue
            flattened += flattened_by(fmt, record)
            f.write(json.dumps(format_record(fmt, record), ensure_ascii=False) + "\n")
            written += 1
    return ExportReport(path=path, format=fmt, written=written, summary=result, left_out=left_out,
                        flattened=flattened)


def import_preferences(store: LabelStore, queue: Queue | str, path: Path | str, *, fmt: str = "auto",
                       labeled: bool = True, create_mode: str | None = None) -> ImportReport:
    """Add a preference file's records to the queue: a pair as a two-candidate item (chosen first), an
    answer judged on its own (TRL unpaired, LLaMA-Factory kto_tag) as a one-candidate item of a
    single-answer queue. A queue that does not exist is made (in `create_mode`, when given; "auto":
    single for judged answers, pair for pairs) with the first items, in their transaction.

    With `labeled` each new item gets a label of kind "import" from annotator "import:<file name>":
    chosen is better, or the answer's good / bad; without, the items wait for annotators. Records that
    cannot be read, and records whose prompt and answers are already in the file or the queue, are
    reported with where they are; every other record is added. Raises DataError when the file cannot
    be read, LabelStoreError when the queue's mode cannot hold the file's records.
    """
    path = Path(path)
    judged = read_unpaired_file(path, fmt)
    read = read_records(path, fmt) if judged is None else None
    if create_mode == "auto":
        create_mode = "pair" if judged is None else "single"
    q = store.queue_for_import(queue, create_mode)
    _check_mode(q, judged is not None, path)
    if judged is not None:
        entries = [_Entry(r.where, prompt_text(r.prompt_messages), r.prompt_messages,
                          [candidate_from_messages(r.completion)], "good" if r.good else "bad", "good" if r.good else "bad")
                   for r in judged.records]
        report = ImportReport(path=path, queue=q.name, format=judged.format, records=judged.total, added=0, labeled=0,
                              annotator=f"import:{path.name}" if labeled else None, malformed=list(judged.problems))
    else:
        entries = [_Entry(r.where, r.prompt, r.prompt_messages,
                          [candidate_from_messages(r.chosen), candidate_from_messages(r.rejected)], "left",
                          r.chosen_text, r.extra) for r in read.records]
        report = ImportReport(path=path, queue=q.name, format=read.format, records=read.total, added=0, labeled=0,
                              annotator=f"import:{path.name}" if labeled else None, malformed=list(read.problems))
    opposite = " but the opposite " + ("verdict" if judged is not None else "preference")
    first_seen: dict[str, _Entry] = {}
    fresh: list[_Entry] = []
    for entry in entries:
        key = item_key(entry.prompt, entry.candidates)
        earlier = first_seen.get(key)
        if earlier is not None:
            differs = opposite if earlier.claim != entry.claim else ""
            report.duplicates.append(Problem(entry.where, f"same prompt and answers as {_short(earlier.where)}{differs}"))
            continue
        first_seen[key] = entry
        fresh.append(entry)
    # Items and their import labels go in one transaction (one commit for the file, not one per label).
    added = store.add_items(q, (_item_fields(entry, path.name) for entry in fresh),
                            imported_by=report.annotator if labeled else None)
    for index in added.duplicates:
        report.duplicates.append(Problem(fresh[index].where, f"already in queue {q.name!r}"))
    report.duplicates.sort(key=lambda p: line_of(p.where))
    report.added = added.added
    report.labeled = added.added if labeled else 0
    if judged is not None:
        left_out = set(added.duplicates)
        report.good = sum(entry.verdict == "good" for i, entry in enumerate(fresh) if i not in left_out)
    return report


@dataclass(frozen=True)
class _Entry:
    """A record of an imported file as the item it becomes and the verdict its import label gives."""

    where: str
    prompt: str
    prompt_messages: list[dict]
    candidates: list[Candidate]
    verdict: str  # "left" (a pair, chosen first) or "good" / "bad" (a single answer)
    claim: str  # what a record with the same prompt and answers contradicts: the chosen text, or the verdict
    extra: dict = field(default_factory=dict)


def _check_mode(queue: Queue, judged: bool, path: Path) -> None:
    if judged and queue.mode != "single":
        raise LabelStoreError(
            f"{path.name} holds answers judged one at a time (good or bad), and queue {queue.name!r} is a {queue.mode} "
            "queue. Import it into a single-answer queue: a new name with --create makes one (`labels import FILE "
            "--queue NAME --create`), or `labels create NAME --mode single`.")
    if not judged and queue.mode == "single":
        raise LabelStoreError(
            f"{path.name} holds preference pairs, and queue {queue.name!r} takes single answers judged good or bad. "
            "Import it into a pair queue (a new name with --create makes one); `kind: kto` reads pair files as they "
            "are, a chosen answer as good and a rejected one as bad.")


def _item_fields(entry: _Entry, file_name: str) -> dict:
    meta: dict = {}
    if not is_plain_prompt(entry.prompt_messages):
        meta["prompt_messages"] = entry.prompt_messages
    meta["import"] = {"file": file_name, "where": _short(entry.where)}
    if entry.extra:
        meta["extra"] = entry.extra
    return {"prompt": entry.prompt, "candidates": [c.to_json() for c in entry.candidates], "meta": meta,
            "verdict": entry.verdict}


def _short(where: str) -> str:
    """'pairs.jsonl, line 4' -> 'line 4'."""
    return where.split(", ", 1)[-1]
