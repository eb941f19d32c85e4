"""Preferences for the preference kinds, from labeling queues (`queue:NAME`) or preference files, as
conversations split into train and held-out parts by prompt: pairs (prompt, chosen, rejected) for
reward and DPO, judged answers (prompt, answer, good or bad) for KTO.

Every kind reads every shape: a pair is a good and a bad answer to one prompt (KTO reads it as two
judged answers), and judged answers give pairs where a prompt has both a good and a bad answer.

Light (no torch): the labeling package reads the files and the store.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import DataError

QUEUE_PREFIX = "queue:"


@dataclass(frozen=True)
class Pair:
    """One preference: the conversation up to the answer, and the better and worse answers (assistant turns)."""

    prompt: list[dict]
    chosen: list[dict]
    rejected: list[dict]
    where: str  # "queue reverse, item 12" or "prefs.jsonl, line 4"


@dataclass(frozen=True)
class Judged:
    """One answer judged on its own: the conversation up to the answer, the answer's turns, good or bad."""

    prompt: list[dict]
    completion: list[dict]
    good: bool
    where: str


@dataclass
class LoadedJudged:
    train: list[Judged]
    held_out: list[Judged]
    notes: list[str] = field(default_factory=list)
    formats: dict[str, str] = field(default_factory=dict)


@dataclass
class LoadedPairs:
    train: list[Pair]
    held_out: list[Pair]
    notes: list[str] = field(default_factory=list)  # what was left out, and why (for the run's log)
    formats: dict[str, str] = field(default_factory=dict)  # source -> its format (trl, hh, …; "queue")


def load_pairs(sources: list[str], workspace: Path | None, eval_fraction: float, seed: int) -> LoadedPairs:
    """Every pair of every source; pairs of one prompt stay on one side of the split (no leakage)."""
    pairs: list[Pair] = []
    notes: list[str] = []
    empty: list[str] = []  # why each source gave no pair
    formats: dict[str, str] = {}
    for source in sources:
        found, judged, said, formats[source] = _preferences_of(source, workspace)
        unmatched = 0
        if judged:
            made, unmatched = pairs_from_judged(judged)
            found = found + made
        pairs += found
        notes += said
        if found and unmatched:
            notes.append(f"{source}: {unmatched:,} judged answers have no answer of the other verdict to the same "
                         "prompt, so they make no pair")
        elif not found and judged:
            empty.append(f"{source} holds {len(judged):,} judged answers ({formats[source]} format), but no prompt has "
                         "both a good and a bad answer to make a pair of")
        elif not found:
            empty.append(_why_no_pairs(source, said))
    if not pairs:
        queues = any(source.startswith(QUEUE_PREFIX) for source in sources)
        raise DataError(f"No preference pairs: {'; '.join(empty)}.",
                        ("Label some items of the queue (ties, both-bad, skips and items without a majority give no "
                         "pair), or " if queues else "Give ")
                        + "a preference file: TRL (prompt, chosen, rejected), TRL conversational, HH-RLHF or "
                          "LLaMA-Factory pairs; or judged answers with a good and a bad answer to each prompt.")
    held_out, train = _split(pairs, eval_fraction, seed)
    return LoadedPairs(train=train, held_out=held_out, notes=notes, formats=formats)


def load_judged(sources: list[str], workspace: Path | None, eval_fraction: float, seed: int) -> LoadedJudged:
    """Every judged answer of every source (a pair gives its chosen answer as good and its rejected one
    as bad); the answers to one prompt stay on one side of the split."""
    answers: list[Judged] = []
    notes: list[str] = []
    formats: dict[str, str] = {}
    empty: list[str] = []
    for source in sources:
        pairs, judged, said, formats[source] = _preferences_of(source, workspace)
        found = judged + judged_from_pairs(pairs)
        answers += found
        notes += said
        if not found:
            empty.append(_why_no_pairs(source, said).replace("preference pair", "judged answer"))
    if not answers:
        raise DataError(f"No judged answers: {'; '.join(empty)}.",
                        "Label a single-answer queue (good / bad) or a pair queue, or give a file of judged answers "
                        "(TRL unpaired: prompt, completion, label; LLaMA-Factory with kto_tag) or of preference pairs.")
    held_out, train = _split(answers, eval_fraction, seed)
    return LoadedJudged(train=train, held_out=held_out, notes=notes, formats=formats)


def judged_from_pairs(pairs: list[Pair]) -> list[Judged]:
    return [judged for pair in pairs for judged in (Judged(pair.prompt, pair.chosen, True, pair.where),
                                                     Judged(pair.prompt, pair.rejected, False, pair.where))]


def pairs_from_judged(judged: list[Judged]) -> tuple[list[Pair], int]:
    """Every good answer paired with every bad answer to the same prompt, and how many answers found
    no answer of the other verdict."""
    by_prompt: dict[str, tuple[list[Judged], list[Judged]]] = {}
    for answer in judged:
        good, bad = by_prompt.setdefault(_prompt_key(answer.prompt), ([], []))
        (good if answer.good else bad).append(answer)
    pairs, unmatched = [], 0
    for good, bad in by_prompt.values():
        if not good or not bad:
            unmatched += len(good) + len(bad)
            continue
        pairs += [Pair(g.prompt, g.completion, b.completion, f"{g.where} and {b.where}") for g in good for b in bad]
    return pairs, unmatched


def _split(items: list, fraction: float, seed: int) -> tuple[list, list]:
    held_out, train = [], []
    for item in items:
        (held_out if _held_out(item.prompt, fraction, seed) else train).append(item)
    if not train:
        raise DataError(f"All {len(items)} preferences fell in the held-out split (data.eval_fraction {fraction}).",
                        "Lower data.eval_fraction or add preferences.")
    return held_out, train


def _why_no_pairs(source: str, notes: list[str]) -> str:
    """Why a source gave no pair, in words: what its records are, and why they are not pairs (each
    reason once, with how many records gave it and the first of them)."""
    if source.startswith(QUEUE_PREFIX):
        return f"{source}: " + (", ".join(notes) if notes else "the queue has no items")
    looks = _instruction_format(Path(source).expanduser())
    what = (f"{source} looks like instruction data for fine-tuning ({looks} format), not preference pairs"
            if looks else f"{source} holds no preference pair")
    reasons: dict[str, list[str]] = {}
    for note in notes:
        where, _, reason = note.partition(": ")
        reasons.setdefault(reason, []).append(where)
    said = [f"{len(wheres)} record{'s' if len(wheres) > 1 else ''} like {wheres[0]}: {reason}"
            for reason, wheres in list(reasons.items())[:3]]
    return "; ".join([what, *said])


def _instruction_format(path: Path) -> str | None:
    """The fine-tuning format of the file's first record, when it has one."""
    if not path.is_file():
        return None
    from engine.data.reader import iter_records
    from engine.finetune.formats import detect_format

    try:
        first = next(iter(iter_records(path, on_problem=lambda *_: None)), None)
        return detect_format(first.value, first.where) if first is not None else None
    except DataError:
        return None


def _preferences_of(source: str, workspace: Path | None) -> tuple[list[Pair], list[Judged], list[str], str]:
    """The pairs and the judged answers of one source, what was left out and why, and its format."""
    if source.startswith(QUEUE_PREFIX):
        return (*_queue_preferences(source[len(QUEUE_PREFIX):], workspace), "queue")
    from engine.data.locate import resolve_source

    found = resolve_source(source, "data.sources")
    if found.kind == "hub" and found.missing_locally:
        raise DataError(f"No preference file at {source} (data.sources).",
                        "Check the path (relative paths start from the folder the engine runs in), or write "
                        "queue:NAME for a labeling queue.")
    if found.kind != "files":
        raise DataError(f"{source} (data.sources) is a {found.kind} dataset; preferences are read from files.",
                        "Give preference files (or a folder or dataset_info.json entry of them), or queue:NAME.")
    pairs: list[Pair] = []
    judged: list[Judged] = []
    notes: list[str] = []
    formats: list[str] = []
    for path in found.files:
        file_pairs, file_judged, said, format = _file_preferences(path, found.records)
        pairs += file_pairs
        judged += file_judged
        notes += said
        formats.append(format)
    return pairs, judged, notes, ", ".join(dict.fromkeys(formats))


def _file_preferences(path: Path, reader) -> tuple[list[Pair], list[Judged], list[str], str]:
    from engine.labeling.records import RecordError, read_records
    from engine.labeling.unpaired import read_unpaired_file

    # Unpaired files are told by their fields (label, kto_tag); anything else is read as pairs.
    try:
        unpaired = read_unpaired_file(path, reader=reader)
    except DataError as e:
        raise DataError(f"Cannot read the preference file {path}: {e.message}", e.hint) from e
    if unpaired is not None:
        return ([], [Judged(r.prompt_messages, r.completion, r.good, r.where) for r in unpaired.records],
                [f"{p.where}: {p.message}" for p in unpaired.problems], unpaired.format)
    try:
        read = read_records(path, reader=reader)
    except (OSError, RecordError, ValueError) as e:
        raise DataError(f"Cannot read the preference file {path}: {e}",
                        "Give a TRL, HH-RLHF or LLaMA-Factory preference file, or queue:NAME.") from e
    notes = [f"{p.where}: {p.message}" for p in read.problems]
    return [Pair(r.prompt_messages, r.chosen, r.rejected, r.where) for r in read.records], [], notes, read.format


def _queue_preferences(name: str, workspace: Path | None) -> tuple[list[Pair], list[Judged], list[str]]:
    from engine.labeling.formats import candidate_messages, judged_answers, preference_pairs
    from engine.labeling.store import LabelStore, LabelStoreError

    store_path = (workspace or Path(".")) / "store.db"
    if not store_path.exists():
        raise DataError(f"queue:{name}: there is no label store at {store_path}.",
                        "Label in the studio's Label page (or `studio-engine labels …`) in this workspace first.")
    store = LabelStore(store_path)
    try:
        queue = store.queue(name)
        if queue.mode == "single":
            judged = judged_answers(store, queue)
            left_out = {"unlabeled": judged.unlabeled, "skipped": judged.skipped,
                        "without a majority": judged.conflicts}
            notes = [f"queue {name}: {count} item(s) {why} give no judged answer"
                     for why, count in left_out.items() if count]
            return [], [Judged(a.prompt_messages, candidate_messages(a.answer), a.good, f"queue {name}, item {a.item_id}")
                        for a in judged.answers], notes
        result = preference_pairs(store, queue)
    except LabelStoreError as e:
        raise DataError(f"queue:{name}: {e}", "Use the name of a labeling queue of this workspace.") from e
    left_out = {"ties": result.ties, "both bad": result.both_bad, "without a majority": result.conflicts,
                "unlabeled": result.unlabeled, "skipped": result.skipped}
    notes = [f"queue {name}: {count} item(s) {why} give no pair" for why, count in left_out.items() if count]
    pairs = [Pair(p.prompt_messages, candidate_messages(p.chosen), candidate_messages(p.rejected),
                  f"queue {name}, item {p.item_id}") for p in result.pairs]
    return pairs, [], notes


def _prompt_key(prompt: list[dict]) -> str:
    return "\x00".join(f"{m.get('role')}:{m.get('content')}" for m in prompt)


def _held_out(prompt: list[dict], fraction: float, seed: int) -> bool:
    if fraction <= 0:
        return False
    text = _prompt_key(prompt)
    digest = hashlib.blake2b(f"{seed}\x00{text}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction
