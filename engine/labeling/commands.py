"""`studio-engine labels …`: queues, import, export, agreement and arena ratings from the command line.

Every subcommand reads `--store` (default `<workspace>/store.db`, the studio's store) and prints a
readable summary, or one JSON object with `--json`. Bad input exits 2 with a sentence on stderr.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.common import EXIT_INVALID, fail
from engine.errors import UserError, disk_full_error
from engine.labeling.agreement import agreement_of, conflicts, position_bias, readable_preference
from engine.labeling.batch import import_batch
from engine.labeling.formats import POLICIES, POLICY_HELP, export_preferences, import_preferences
from engine.labeling.records import EXPORT_FORMATS, IMPORT_FORMATS, Problem
from engine.labeling.store import MODES, LabelStore, LabelStoreError, Queue
from engine.labeling.unpaired import UNPAIRED_FORMATS

if TYPE_CHECKING:
    from engine.labeling.ratings import Ratings

SHOWN_PROBLEMS = 20  # per kind in the readable output; --json lists them all


def add_labels_command(sub) -> None:
    """Registers `labels` and its subcommands on the engine CLI's subparsers."""
    labels = sub.add_parser("labels", help="Preference labeling queues: create, import, export, agreement.",
                            description="Preference labeling queues in the studio's store: create them, import "
                                        "generated answers or preference files, export training pairs, and see "
                                        "progress, agreement and conflicts.")
    verbs = labels.add_subparsers(dest="labels_command", required=True, metavar="SUBCOMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", type=Path, default=None,
                        help="the store file (default: <workspace>/store.db, the studio's store)")
    common.add_argument("--json", action="store_true", help="print one JSON object instead of a summary")

    def add(name: str, func, help: str):
        p = verbs.add_parser(name, help=help, description=help, parents=[common])
        p.set_defaults(func=lambda args: _guarded(func, args))
        return p

    add("queues", cmd_queues, "List the labeling queues with their progress.")
    p = add("create", cmd_create, "Create a labeling queue.")
    p.add_argument("name")
    p.add_argument("--mode", choices=MODES, default="pair", help="pair: pick the better of two; rank: order several; single: judge each answer good or bad (for KTO)")
    p.add_argument("--guidelines", type=Path, help="a text or Markdown file shown to annotators")
    p.add_argument("--overlap", type=float, default=0.0,
                   help="share of items labeled by several annotators, for agreement (e.g. 0.2)")
    p.add_argument("--overlap-annotators", type=int, default=2, help="annotators per overlap item (default 2)")
    p = add("import-batch", cmd_import_batch,
            "Import a generate run's candidates (run id, run folder or candidates.jsonl) into a queue.")
    p.add_argument("source", metavar="RUN_OR_FILE")
    _queue_args(p, create=True)
    p = add("import", cmd_import, "Import a preference file: pairs (TRL, TRL conversational, HH-RLHF, LLaMA-Factory) "
                                  "into a pair queue, or answers judged good or bad one at a time (TRL unpaired, "
                                  "LLaMA-Factory kto_tag) into a single-answer queue.")
    p.add_argument("file", type=Path)
    _queue_args(p, create=True, mode_by_file=True)
    p.add_argument("--format", choices=("auto", *IMPORT_FORMATS, *UNPAIRED_FORMATS), default="auto",
                   help="the file's format (default: told from its records)")
    p.add_argument("--unlabeled", action="store_true",
                   help="import the items without the file's preferences or verdicts, for annotators to label")
    p = add("auto-label", cmd_auto_label,
            "Label a queue's items with the task checker's verdicts (candidates from builtin:tasks prompts): "
            "the correct answer beats a wrong one. Marked as checker labels, not human ones.")
    p.add_argument("--queue", required=True)
    p = add("export", cmd_export, "Write a queue's labels as preference pairs for training.")
    _queue_args(p, create=False)
    p.add_argument("--format", choices=EXPORT_FORMATS, required=True,
                   help="trl: prompt/chosen/rejected texts; trl-chat: the same as chat messages; "
                        "hh: HH-RLHF Human/Assistant transcripts")
    p.add_argument("--out", type=Path, required=True, help="the JSON-lines file to write")
    p.add_argument("--policy", choices=POLICIES, default="majority", help=POLICY_HELP)
    p.add_argument("--kind", action="append", choices=("human", "checker", "import"), dest="kinds",
                   help="use only labels of this kind (repeat for several; default: all)")
    p = add("stats", cmd_stats, "A queue's progress, annotators, position bias and agreement.")
    _queue_args(p, create=False)
    p = add("conflicts", cmd_conflicts, "The items of a queue whose annotators disagree.")
    _queue_args(p, create=False)
    p = add("ratings", cmd_ratings,
            "Arena ratings of the models whose answers a queue compares: Bradley–Terry or Elo, with bootstrap "
            "confidence intervals, overall and per annotator, and the annotators' agreement.")
    _queue_args(p, create=False)
    p.add_argument("--method", choices=("bt", "elo"), default="bt",
                   help="bt: Bradley–Terry maximum likelihood on the Elo scale (the default; order does not "
                        "matter); elo: online Elo in the order the votes were given")
    p.add_argument("--bootstrap", type=int, default=1000, help="resamples for the confidence intervals (0: none)")
    p.add_argument("--confidence", type=float, default=0.95, help="the intervals' coverage (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="seeds the resampling (default 0)")
    p.add_argument("--kind", action="append", choices=("human", "checker", "import"), dest="kinds",
                   help="count only labels of this kind (repeat for several; default: all)")


def _queue_args(p: argparse.ArgumentParser, create: bool, mode_by_file: bool = False) -> None:
    p.add_argument("--queue", required=True, help="the queue's name")
    if create:
        p.add_argument("--create", action="store_true", help="create the queue if there is none by that name")
        if mode_by_file:
            p.add_argument("--mode", choices=MODES, default=None,
                           help="the mode of a queue made by --create (default: by the file, single for judged "
                                "answers, pair for pairs)")
        else:
            p.add_argument("--mode", choices=MODES, default="pair", help="the mode of a queue made by --create")


# -- plumbing ------------------------------------------------------------------------------------

def _guarded(func, args) -> int:
    try:
        return func(args)
    except LabelStoreError as e:
        return fail(str(e), EXIT_INVALID)
    except UserError as e:
        return fail(e.for_terminal(), EXIT_INVALID)
    except (OSError, sqlite3.Error) as e:
        full = disk_full_error(e, str(_store_path(args)))
        if full is not None:
            return fail(full.for_terminal())
        if isinstance(e, sqlite3.DatabaseError):
            return fail(f"the label store {_store_path(args)} cannot be used: {e}.\nWhat to do: check that it is "
                        "the studio's store.db (--store) and that its folder is writable; if it was damaged, "
                        "restore it from a copy.", 1)
        raise


def _store_path(args) -> Path:
    return (args.store or args.workspace / "store.db").expanduser()


def _open(args, *, create: bool = False) -> LabelStore:
    path = _store_path(args)
    if not create and not path.exists():
        raise LabelStoreError(f"No store at {path}: there are no labeling queues yet. Create one with "
                              "`studio-engine labels create NAME`, or pass --store.")
    return LabelStore(path)


def _import_queue(store: LabelStore, args) -> Queue:
    """The queue to import into; with --create, one that the import makes together with its items."""
    _check_queue(store, args)
    return store.queue_for_import(args.queue, args.mode if args.create else None)


def _check_queue(store: LabelStore, args) -> None:
    if not args.create and store.find_queue(args.queue) is None:
        names = ", ".join(q.name for q in store.queues()) or "none yet"
        raise LabelStoreError(f"No labeling queue {args.queue!r} in {store.path} (queues: {names}); "
                              "pass --create to make it.")


def _print_json(data) -> int:
    print(json.dumps(data, indent=1, ensure_ascii=False))
    return 0


def _problems(title: str, problems: list[Problem]) -> None:
    if not problems:
        return
    print(f"{title} ({len(problems)}):")
    for problem in problems[:SHOWN_PROBLEMS]:
        print(f"  {problem}")
    if len(problems) > SHOWN_PROBLEMS:
        print(f"  … and {len(problems) - SHOWN_PROBLEMS} more (--json lists them all)")


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


def _kappa(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


# -- the subcommands ---------------------------------------------------------------------------

def cmd_queues(args) -> int:
    path = _store_path(args)
    rows = []
    if path.exists():
        store = LabelStore(path)
        for q in store.queues():
            p = store.progress(q)
            rows.append({"name": q.name, "mode": q.mode, "items": p.items, "done": p.done, "labels": p.labels,
                         "annotators": len(p.per_annotator), "overlap": q.overlap, "source": q.source})
    if args.json:
        return _print_json({"store": str(path), "queues": rows})
    if not rows:
        print(f"No labeling queues in {path} yet. Create one with `studio-engine labels create NAME`.")
        return 0
    print(f"{'QUEUE':<24} {'MODE':<5} {'ITEMS':>7} {'DONE':>7} {'LABELS':>7} {'PROGRESS':>9}  ANNOTATORS")
    for r in rows:
        share = r["done"] / r["items"] if r["items"] else None
        print(f"{r['name']:<24} {r['mode']:<5} {r['items']:>7} {r['done']:>7} {r['labels']:>7} "
              f"{_percent(share):>9}  {r['annotators']}")
    return 0


def cmd_create(args) -> int:
    guidelines = ""
    if args.guidelines is not None:
        try:
            guidelines = args.guidelines.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            return fail(f"cannot read the guidelines file {args.guidelines} ({e.__class__.__name__}: {e}); "
                        "give a UTF-8 text or Markdown file.", EXIT_INVALID)
    store = _open(args, create=True)
    q = store.create_queue(args.name, mode=args.mode, guidelines=guidelines, overlap=args.overlap,
                           overlap_annotators=args.overlap_annotators)
    if args.json:
        return _print_json(asdict(q) | {"store": str(store.path)})
    overlap = (f", {q.overlap:.0%} of items labeled by {q.overlap_annotators} annotators" if q.overlap
               else ", one annotator per item")
    print(f"Created queue '{q.name}' ({q.mode}{overlap}) in {store.path}.")
    return 0


def cmd_import_batch(args) -> int:
    store = _open(args, create=True)
    report = import_batch(store, _import_queue(store, args), args.source, workspace=args.workspace)
    message = (f"Added {report.added} items to queue '{report.queue}' ({report.mode}) from {report.prompts} prompts "
               f"of {report.path}" + (f"; {report.collapsed} answers with the same text as another were collapsed."
                                      if report.collapsed else ".")
               + _not_added(("already in the queue", report.duplicates), ("skipped", report.skipped),
                            ("unreadable", report.malformed)))
    if args.json:
        _print_json(report.to_json() | {"message": message})
    else:
        print(message)
        _problems("Already in the queue", report.duplicates)
        _problems("Skipped", report.skipped)
        _problems("Unreadable", report.malformed)
    return EXIT_INVALID if report.malformed and not report.added and not report.duplicates else 0


def cmd_auto_label(args) -> int:
    from engine.labeling.checker_labels import label_by_checker

    store = _open(args)
    report = label_by_checker(store, args.queue)
    message = (f"{report.annotator} labeled {report.labeled} items of queue '{report.queue}': {report.preferences} "
               f"correct-over-wrong, {report.ties} both correct (tie), {report.both_bad} both wrong"
               + (f"; {report.unchecked} items have no checker verdict (not from builtin:tasks prompts)"
                  if report.unchecked else "") + (f"; {report.already} were labeled before" if report.already else "")
               + ".")
    if args.json:
        return _print_json(report.to_json() | {"message": message})
    print(message)
    return EXIT_INVALID if report.unchecked and not report.labeled and not report.already else 0


def cmd_import(args) -> int:
    store = _open(args, create=True)
    _check_queue(store, args)
    report = import_preferences(store, args.queue, args.file, fmt=args.format, labeled=not args.unlabeled,
                                create_mode=(args.mode or "auto") if args.create else None)
    how = f"labeled by {report.annotator}" if report.annotator else "unlabeled, for annotators"
    if report.good is not None:
        how += f" ({report.good} good, {report.added - report.good} bad)"
    message = (f"Imported {report.added} of {report.records} records of {report.path.name} ({report.format}) into "
               f"queue '{report.queue}', {how}."
               + _not_added(("duplicates", report.duplicates), ("malformed", report.malformed)))
    if args.json:
        _print_json(report.to_json() | {"message": message})
    else:
        print(message)
        _problems("Duplicates, not imported", report.duplicates)
        _problems("Malformed, not imported", report.malformed)
    return EXIT_INVALID if report.malformed and not report.added and not report.duplicates else 0


def _not_added(*kinds: tuple[str, list[Problem]]) -> str:
    counted = [f"{len(problems)} {what.rstrip('s') if len(problems) == 1 else what}" for what, problems in kinds
               if problems]
    return f" Not added: {', '.join(counted)} (listed with their lines)." if counted else ""


def cmd_export(args) -> int:
    store = _open(args)
    report = export_preferences(store, store.queue(args.queue), args.out, args.format, policy=args.policy,
                                kinds=tuple(args.kinds) if args.kinds else None)
    s = report.summary
    lines = [f"Wrote {report.written} pairs to {report.path} ({report.format}) from queue '{args.queue}' "
             f"({s.items} items, {s.policy} of labels)."]
    undecided = "without a " + ("consensus" if s.policy == "unanimous" else "majority")
    left_out = [f"{n} {what}" for n, what in ((s.ties, "ties"), (s.both_bad, "both bad"), (s.conflicts, undecided)) if n]
    if left_out:
        lines.append("Left out (candidate pairs): " + ", ".join(left_out) + ".")
    waiting = [f"{n} {what}" for n, what in ((s.unlabeled, "not labeled yet"), (s.skipped, "only skipped")) if n]
    if waiting:
        lines.append("Items without pairs: " + ", ".join(waiting) + ".")
    if report.left_out:
        lines.append(f"Left out {len(report.left_out)} pair{'s' if len(report.left_out) != 1 else ''} the "
                     f"{report.format} format cannot hold (`--format trl-chat` keeps them): "
                     + "; ".join(str(p) for p in report.left_out[:SHOWN_PROBLEMS])
                     + (" …" if len(report.left_out) > SHOWN_PROBLEMS else "") + ".")
    if report.flattened:
        lines.append(f"{report.flattened} pair{'s have' if report.flattened != 1 else ' has'} a system turn, earlier "
                     "turns or an answer of several turns: the trl format writes each prompt and answer as one text "
                     "(the turns as \"User: …\" paragraphs); `--format trl-chat` keeps the turns.")
    if args.json:
        return _print_json(report.to_json() | {"queue": args.queue, "message": " ".join(lines)})
    print("\n".join(lines))
    return 0


def cmd_stats(args) -> int:
    store = _open(args)
    q = store.queue(args.queue)
    progress = store.progress(q)
    labels = store.labels(q)
    bias = position_bias(labels)
    table = agreement_of(labels)
    if args.json:
        return _print_json({"queue": q.name, "mode": q.mode, "progress": asdict(progress),
                            "position_bias": bias.to_json(), "agreement": table.to_json()})
    done = progress.done / progress.items if progress.items else None
    print(f"Queue '{q.name}' ({q.mode}): {progress.done} of {progress.items} items done ({_percent(done)}), "
          f"{progress.labels} labels, {progress.skipped} skips.")
    if progress.per_annotator:
        print("Labels by annotator (skips not counted): "
              + ", ".join(f"{name} {n}" for name, n in progress.per_annotator.items()))
    if bias.left_share is not None:
        print(f"Position bias: the left answer won {bias.left_share:.0%} of {bias.sided} left/right verdicts "
              "(50% is none; exports use the candidate, never the side).")
    if not table.pairs:
        print("Agreement: no item has verdicts from two annotators yet"
              + (" (set an overlap when creating the queue to get some)." if not q.overlap else "."))
        return 0
    print(f"Agreement on {table.items} items labeled by several annotators: {_percent(table.percent)} agree, "
          f"kappa {_kappa(table.kappa)}" + (" (Light's: the mean over annotator pairs)." if len(table.pairs) > 1 else "."))
    width = max(len(p.annotator_a) + len(p.annotator_b) for p in table.pairs) + 5
    print(f"  {'ANNOTATORS':<{width}} {'ITEMS':>6} {'AGREE':>6} {'KAPPA':>6}")
    for p in table.pairs:
        print(f"  {p.annotator_a + ' / ' + p.annotator_b:<{width}} {p.items:>6} {_percent(p.percent):>6} "
              f"{_kappa(p.kappa):>6}")
    return 0


def cmd_conflicts(args) -> int:
    store = _open(args)
    q = store.queue(args.queue)
    found = conflicts(store, q)
    if args.json:
        return _print_json({"queue": q.name, "conflicts": [c.to_json() for c in found]})
    if not found:
        print(f"No conflicts in queue '{q.name}': annotators agree on every item they share.")
        return 0
    print(f"{len(found)} item{'s' if len(found) != 1 else ''} of queue '{q.name}' where annotators disagree:")
    for conflict in found:
        item = conflict.item
        print(f"\n#{item.position + 1} (item {item.id}): {_clip(item.prompt, 100)}")
        for index, candidate in enumerate(item.candidates):
            origin = ", ".join(x for x in (candidate.model, f"seed {candidate.seed}" if candidate.seed is not None
                                           else "") if x)
            print(f"  {chr(ord('A') + index)}: {_clip(candidate.text, 90)}" + (f"  ({origin})" if origin else ""))
        for vote in conflict.votes:
            comment = f' — "{vote.comment}"' if vote.comment else ""
            print(f"  {vote.annotator}: {readable_preference(vote.preference)} (said {vote.verdict}){comment}")
    return 0


def _clip(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


def cmd_ratings(args) -> int:
    # Imported here: every command's parser imports this module, and the ratings load numpy.
    from engine.labeling.ratings import arena

    store = _open(args)
    report = arena(store, args.queue, method=args.method, bootstrap=args.bootstrap, confidence=args.confidence,
                   seed=args.seed, kinds=tuple(args.kinds) if args.kinds else None)
    if args.json:
        return _print_json(report.to_json())
    left_out = [f"{n} {what}" for n, what in ((report.same_model_pairs, "pairs of one model's answers"),
                                              (report.unattributed_pairs, "pairs with an answer of no named model"))
                if n]
    if not report.overall.ratings:
        print(f"No votes between two models' answers in queue '{report.queue}' yet"
              + (f" (left out: {', '.join(left_out)})" if left_out else "")
              + ". Generate answers from two or more models (Generate candidates, or `studio-engine run` a "
                "generate spec), import them with `labels import-batch`, and label them.")
        return 0
    print(f"Arena '{report.queue}': {len(report.models)} models, {report.overall.votes} votes"
          + (f" (left out: {', '.join(left_out)})" if left_out else "") + ".")
    _ratings_table("Everyone", report.overall)
    for name, found in report.per_annotator.items():
        _ratings_table(name, found)
    table = report.agreement
    if table.pairs:
        print(f"\nAgreement on {table.items} items labeled by several annotators: {_percent(table.percent)} agree, "
              f"kappa {_kappa(table.kappa)}.")
    else:
        print("\nAgreement: no item has verdicts from two annotators yet (give the queue an overlap to measure it).")
    return 0


def _ratings_table(who: str, found: Ratings) -> None:
    interval = f"{found.confidence:.0%} CI"
    print(f"\n{who}: {found.method}, {found.votes} votes"
          + (f", intervals from {found.bootstrap} resamples" if found.bootstrap else ", no intervals") + ".")
    if not found.ratings:
        return
    width = max(len("MODEL"), *(len(r.model) for r in found.ratings))
    print(f"  {'#':>2} {'MODEL':<{width}} {'RATING':>7} {interval:>15} {'WINS':>5} {'LOSSES':>6} {'TIES':>5} "
          f"{'WIN RATE':>8}")
    for rank, r in enumerate(found.ratings, start=1):
        print(f"  {rank:>2} {r.model:<{width}} {r.rating:>7.0f} {f'{r.low:.0f} – {r.high:.0f}':>15} {r.wins:>5} "
              f"{r.losses:>6} {r.ties:>5} {_percent(r.win_rate):>8}")
