"""The label store: labeling queues, their items (a prompt and its candidate answers) and the labels.

It lives in the studio's `store.db` (SQLite, WAL) so the GUI and `studio-engine label-server` work on
the same queue at the same time. Every label is one `BEGIN IMMEDIATE … COMMIT`: a process killed
between two labels loses neither, and two writers never interleave half a label.

Plain `sqlite3` rather than sqlite-utils (which the studio's run store uses): this module needs
explicit transaction boundaries and per-thread connections, which sqlite-utils leaves to sqlite3.

Verdicts are stored as the annotator gave them, in display terms (`left`, `right`, …), together
with the display order (`shown`, candidate indices left first) and `ranking` in candidate terms
(best first). Exports read `ranking`, so the side an answer happened to be shown on never leaks out.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

# The records live in entities.py; importers of this module keep finding them here.
from engine.labeling.entities import (  # noqa: F401
    CLAIM_SECONDS, LABEL_KINDS, MODES, PAIR_VERDICTS, RANK_VERDICTS, SINGLE_VERDICTS, AddResult, Candidate, Item, Label, LabelStoreError,
    Progress, Queue, Task, is_overlap, item_key, ranking_for, verdicts_for,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS label_queues (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    mode TEXT NOT NULL DEFAULT 'pair',
    guidelines TEXT NOT NULL DEFAULT '',
    overlap REAL NOT NULL DEFAULT 0,
    overlap_annotators INTEGER NOT NULL DEFAULT 2,
    source TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS label_items (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL REFERENCES label_queues(id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    prompt TEXT NOT NULL,
    candidates TEXT NOT NULL,
    meta TEXT NOT NULL DEFAULT '{}',
    key TEXT NOT NULL,
    required INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL,
    UNIQUE (queue_id, key)
);
CREATE INDEX IF NOT EXISTS label_items_queue ON label_items(queue_id, position);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY,
    queue_id INTEGER NOT NULL REFERENCES label_queues(id) ON DELETE CASCADE,
    item_id INTEGER NOT NULL REFERENCES label_items(id) ON DELETE CASCADE,
    annotator TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'human',
    verdict TEXT NOT NULL,
    shown TEXT NOT NULL,
    swapped INTEGER NOT NULL DEFAULT 0,
    ranking TEXT,
    comment TEXT NOT NULL DEFAULT '',
    seconds REAL,
    source TEXT NOT NULL DEFAULT 'gui',
    created REAL NOT NULL,
    retracted REAL
);
CREATE INDEX IF NOT EXISTS labels_item ON labels(item_id);
CREATE INDEX IF NOT EXISTS labels_queue_annotator ON labels(queue_id, annotator, created);
CREATE TABLE IF NOT EXISTS label_claims (
    item_id INTEGER NOT NULL REFERENCES label_items(id) ON DELETE CASCADE,
    annotator TEXT NOT NULL,
    shown TEXT NOT NULL,
    until REAL NOT NULL,
    PRIMARY KEY (item_id, annotator)
);
"""


class LabelStore:
    """Queues, items and labels in one SQLite file; safe to share between threads and processes."""

    def __init__(self, path: Path | str, *, rng: random.Random | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._db().executescript(_SCHEMA)  # each statement is idempotent; executescript commits itself

    # -- connections and transactions ---------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA foreign_keys=ON")
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (IMMEDIATE) so concurrent writers queue, not deadlock."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            if db.in_transaction:  # SQLite has rolled back already after some errors (a full disk)
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- queues ------------------------------------------------------------------------------
    def create_queue(self, name: str, *, mode: str = "pair", guidelines: str = "", overlap: float = 0.0,
                     overlap_annotators: int = 2, source: str | None = None) -> Queue:
        name = name.strip()
        if not name:
            raise LabelStoreError("A queue needs a name.")
        if mode not in MODES:
            raise LabelStoreError(f"Queue mode must be one of {', '.join(MODES)}; got {mode!r}.")
        _check_overlap(overlap, overlap_annotators)
        with self._write() as db:
            if db.execute("SELECT 1 FROM label_queues WHERE name = ?", (name,)).fetchone():
                raise LabelStoreError(f"A queue named {name!r} exists already; pick another name or add items to it.")
            db.execute("INSERT INTO label_queues (name, mode, guidelines, overlap, overlap_annotators, source, created)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (name, mode, guidelines, overlap, overlap_annotators, source, time.time()))
        return self.queue(name)

    def queue(self, name_or_id: str | int) -> Queue:
        column = "id" if isinstance(name_or_id, int) else "name"
        row = self._db().execute(f"SELECT * FROM label_queues WHERE {column} = ?", (name_or_id,)).fetchone()
        if row is None:
            names = ", ".join(q.name for q in self.queues()) or "none yet"
            raise LabelStoreError(f"No labeling queue {name_or_id!r} in {self.path} (queues: {names}).")
        return Queue(**dict(row))

    def queues(self) -> list[Queue]:
        return [Queue(**dict(r)) for r in self._db().execute("SELECT * FROM label_queues ORDER BY created")]

    def find_queue(self, name: str) -> Queue | None:
        row = self._db().execute("SELECT * FROM label_queues WHERE name = ?", (name,)).fetchone()
        return None if row is None else Queue(**dict(row))

    def queue_for_import(self, queue: Queue | str, create_mode: str | None = None) -> Queue:
        """The queue an import adds to: `queue` itself, or — when there is none by that name and
        `create_mode` is given — a queue not in the store yet (id 0), which `add_items` creates in the
        transaction that adds its first items: an import that fails or is killed leaves no empty queue."""
        if isinstance(queue, Queue):
            return queue
        found = self.find_queue(queue.strip())
        if found is not None or create_mode is None:
            return found or self.queue(queue)
        if create_mode not in MODES:
            raise LabelStoreError(f"Queue mode must be one of {', '.join(MODES)}; got {create_mode!r}.")
        if not queue.strip():
            raise LabelStoreError("A queue needs a name.")
        return Queue(id=0, name=queue.strip(), mode=create_mode, guidelines="", overlap=0.0, overlap_annotators=2,
                     source=None, created=time.time())

    def set_guidelines(self, queue: Queue | str, guidelines: str) -> None:
        q = self._queue(queue)
        with self._write() as db:
            db.execute("UPDATE label_queues SET guidelines = ? WHERE id = ?", (guidelines, q.id))

    def set_overlap(self, queue: Queue | str, overlap: float, overlap_annotators: int = 2) -> None:
        """Change the share of items labeled by several annotators; applies to every item."""
        q = self._queue(queue)
        _check_overlap(overlap, overlap_annotators)
        with self._write() as db:
            db.execute("UPDATE label_queues SET overlap = ?, overlap_annotators = ? WHERE id = ?",
                       (overlap, overlap_annotators, q.id))
            rows = db.execute("SELECT id, position FROM label_items WHERE queue_id = ?", (q.id,)).fetchall()
            db.executemany("UPDATE label_items SET required = ? WHERE id = ?",
                           [(overlap_annotators if is_overlap(r["position"], overlap) else 1, r["id"]) for r in rows])

    def delete_queue(self, queue: Queue | str) -> None:
        q = self._queue(queue)
        with self._write() as db:
            db.execute("DELETE FROM label_queues WHERE id = ?", (q.id,))

    def _queue(self, queue: Queue | str | int) -> Queue:
        return queue if isinstance(queue, Queue) else self.queue(queue)

    # -- items -------------------------------------------------------------------------------
    def add_items(self, queue: Queue | str, items: Iterable[dict], *, imported_by: str | None = None) -> AddResult:
        """Add items (`prompt`, `candidates` as texts or dicts, optional `meta`) in one transaction.

        An item whose prompt and candidate texts are already in the queue is not added again; its
        index is returned in `duplicates`. With `imported_by`, each new item also gets, in the same
        transaction, an `import` label by that annotator: the item's `verdict` (in the candidates' own
        order), by default "left", its first candidate is better (a preference file's chosen answer);
        a single answer's is "good" or "bad". A crash leaves either both or neither. A queue not in the
        store yet (`queue_for_import`) is created in the same transaction, if any item is added.
        """
        q = self._queue(queue)
        duplicates: list[int] = []
        added = 0
        now = time.time()
        with self._write() as db:
            if q.id == 0:
                if db.execute("SELECT 1 FROM label_queues WHERE name = ?", (q.name,)).fetchone():
                    raise LabelStoreError(f"A queue named {q.name!r} was created meanwhile; import into it again.")
                q = replace(q, id=db.execute(
                    "INSERT INTO label_queues (name, mode, guidelines, overlap, overlap_annotators, source, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)", (q.name, q.mode, q.guidelines, q.overlap, q.overlap_annotators,
                                                      q.source, now)).lastrowid)
                created = True
            else:
                created = False
            position = db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM label_items WHERE queue_id = ?",
                                  (q.id,)).fetchone()[0]
            for index, raw in enumerate(items):
                prompt, candidates = _item_fields(raw, index, q.mode)
                key = item_key(prompt, candidates)
                required = q.overlap_annotators if is_overlap(position, q.overlap) else 1
                cursor = db.execute(
                    "INSERT OR IGNORE INTO label_items (queue_id, position, prompt, candidates, meta, key, required, created)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (q.id, position, prompt, json.dumps([c.to_json() for c in candidates]),
                     json.dumps(raw.get("meta") or {}), key, required, now))
                if cursor.rowcount == 0:
                    duplicates.append(index)
                    continue
                if imported_by is not None:
                    verdict = raw.get("verdict", "left")
                    if verdict not in verdicts_for(len(candidates)) or verdict == "skip":
                        raise LabelStoreError(f"Item {index + 1}: {verdict!r} is no verdict to import for an item of "
                                              f"{len(candidates)} candidate(s).")
                    shown = list(range(len(candidates)))
                    ranking = ranking_for(verdict, shown, None)
                    db.execute("INSERT INTO labels (queue_id, item_id, annotator, kind, verdict, shown, swapped, ranking,"
                               " comment, seconds, source, created) VALUES (?, ?, ?, 'import', ?, ?, 0, ?, '',"
                               " NULL, 'import', ?)",
                               (q.id, cursor.lastrowid, imported_by, verdict, json.dumps(shown),
                                json.dumps(ranking) if ranking else None, now))
                added += 1
                position += 1
            if created and not added:
                db.execute("DELETE FROM label_queues WHERE id = ?", (q.id,))
        return AddResult(added=added, duplicates=duplicates)

    def item(self, item_id: int) -> Item:
        row = self._db().execute("SELECT * FROM label_items WHERE id = ?", (item_id,)).fetchone()
        if row is None:
            raise LabelStoreError(f"No labeling item {item_id}.")
        return _item(row)

    def items(self, queue: Queue | str) -> list[Item]:
        q = self._queue(queue)
        return [_item(r) for r in self._db().execute(
            "SELECT * FROM label_items WHERE queue_id = ? ORDER BY position", (q.id,))]

    def answer_sources(self, queue: Queue | str) -> list[str]:
        """Where a queue's answers come from: the generate runs whose candidates were imported into it
        (a run id, or the candidates file when it is not in a run), its own `source`, and the model
        labels of its candidates; empty for a queue of hand-made items."""
        q = self._queue(queue)
        rows = self._db().execute(
            "SELECT DISTINCT COALESCE(json_extract(meta, '$.batch.run'), json_extract(meta, '$.batch.file')),"
            " json_extract(candidates, '$[0].model'), json_extract(candidates, '$[1].model')"
            " FROM label_items WHERE queue_id = ?", (q.id,)).fetchall()
        found = dict.fromkeys([q.source] if q.source else [])
        found.update(dict.fromkeys(value for row in rows for value in row if value))
        return list(found)

    # -- handing out work --------------------------------------------------------------------
    def next_task(self, queue: Queue | str, annotator: str, *, claim_seconds: float = CLAIM_SECONDS) -> Task | None:
        """The next item this annotator should label, claimed for them; None when nothing is left.

        An item is open to an annotator who has not labeled or skipped it, while its labels plus the
        live claims of other annotators are fewer than it requires (1, or more for overlap items).
        An item already claimed by this annotator comes back with the same display order.
        """
        q = self._queue(queue)
        annotator = _annotator(annotator)
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM label_claims WHERE until < ?", (now,))
            own = db.execute(
                "SELECT c.item_id, c.shown FROM label_claims c JOIN label_items i ON i.id = c.item_id"
                " WHERE i.queue_id = ? AND c.annotator = ? AND NOT EXISTS (SELECT 1 FROM labels l"
                "  WHERE l.item_id = c.item_id AND l.annotator = c.annotator AND l.retracted IS NULL)"
                " ORDER BY i.position LIMIT 1", (q.id, annotator)).fetchone()
            if own is not None:
                db.execute("UPDATE label_claims SET until = ? WHERE item_id = ? AND annotator = ?",
                           (now + claim_seconds, own["item_id"], annotator))
                item_id, shown = own["item_id"], tuple(json.loads(own["shown"]))
            else:
                row = db.execute(
                    "SELECT i.* FROM label_items i WHERE i.queue_id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.item_id = i.id AND l.annotator = ?"
                    "  AND l.retracted IS NULL)"
                    " AND (SELECT COUNT(*) FROM labels l WHERE l.item_id = i.id AND l.retracted IS NULL"
                    "  AND l.verdict != 'skip')"
                    " + (SELECT COUNT(*) FROM label_claims c WHERE c.item_id = i.id AND c.annotator != ?) < i.required"
                    " ORDER BY i.position LIMIT 1", (q.id, annotator, annotator)).fetchone()
                if row is None:
                    return None
                item_id = row["id"]
                shown = tuple(self._shuffled(len(json.loads(row["candidates"]))))
                db.execute("INSERT OR REPLACE INTO label_claims (item_id, annotator, shown, until) VALUES (?, ?, ?, ?)",
                           (item_id, annotator, json.dumps(list(shown)), now + claim_seconds))
        return Task(item=self.item(item_id), annotator=annotator, shown=shown)

    def _shuffled(self, count: int) -> list[int]:
        order = list(range(count))
        with self._rng_lock:
            self._rng.shuffle(order)
        return order

    def release(self, task: Task) -> None:
        """Give an unlabeled claimed item back to the pool (an annotator closes the page)."""
        with self._write() as db:
            db.execute("DELETE FROM label_claims WHERE item_id = ? AND annotator = ?", (task.item.id, task.annotator))

    # -- labels ------------------------------------------------------------------------------
    def add_label(self, task: Task, verdict: str, *, ranking: Sequence[int] | None = None, comment: str = "",
                  seconds: float | None = None, source: str = "gui", kind: str = "human") -> Label:
        """Commit one label in its own transaction. `ranking` (candidate indices, best first) is for rank verdicts."""
        item = task.item
        allowed = verdicts_for(len(item.candidates))
        if verdict not in allowed:
            raise LabelStoreError(f"Verdict must be one of {', '.join(allowed)} for an item with "
                                  f"{len(item.candidates)} candidates; got {verdict!r}.")
        if kind not in LABEL_KINDS:
            raise LabelStoreError(f"Label kind must be one of {', '.join(LABEL_KINDS)}; got {kind!r}.")
        implied = ranking_for(verdict, task.shown, ranking)
        with self._write() as db:
            if db.execute("SELECT 1 FROM labels WHERE item_id = ? AND annotator = ? AND retracted IS NULL",
                          (item.id, task.annotator)).fetchone():
                raise LabelStoreError(f"{task.annotator} has labeled item {item.id} already (undo it first to change it).")
            cursor = db.execute(
                "INSERT INTO labels (queue_id, item_id, annotator, kind, verdict, shown, swapped, ranking, comment,"
                " seconds, source, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (item.queue_id, item.id, task.annotator, kind, verdict, json.dumps(list(task.shown)),
                 int(task.swapped), json.dumps(implied) if implied else None, comment.strip(), seconds, source,
                 time.time()))
            db.execute("DELETE FROM label_claims WHERE item_id = ? AND annotator = ?", (item.id, task.annotator))
            label_id = cursor.lastrowid
        return self.label(label_id)

    def undo_last(self, queue: Queue | str, annotator: str, *, claim_seconds: float = CLAIM_SECONDS) -> Task | None:
        """Retract this annotator's latest label in the queue and hand its item back to them, as it was shown.

        The label row stays (marked retracted, with the time) so the history is never lost.
        """
        q = self._queue(queue)
        annotator = _annotator(annotator)
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT * FROM labels WHERE queue_id = ? AND annotator = ? AND retracted IS NULL"
                             " ORDER BY created DESC, id DESC LIMIT 1", (q.id, annotator)).fetchone()
            if row is None:
                return None
            db.execute("UPDATE labels SET retracted = ? WHERE id = ?", (now, row["id"]))
            db.execute("INSERT OR REPLACE INTO label_claims (item_id, annotator, shown, until) VALUES (?, ?, ?, ?)",
                       (row["item_id"], annotator, row["shown"], now + claim_seconds))
        return Task(item=self.item(row["item_id"]), annotator=annotator, shown=tuple(json.loads(row["shown"])))

    def label(self, label_id: int) -> Label:
        row = self._db().execute("SELECT * FROM labels WHERE id = ?", (label_id,)).fetchone()
        if row is None:
            raise LabelStoreError(f"No label {label_id}.")
        return _label(row)

    def labels(self, queue: Queue | str, *, include_retracted: bool = False, annotator: str | None = None) -> list[Label]:
        q = self._queue(queue)
        sql = "SELECT * FROM labels WHERE queue_id = ?"
        args: list[Any] = [q.id]
        if not include_retracted:
            sql += " AND retracted IS NULL"
        if annotator is not None:
            sql += " AND annotator = ?"
            args.append(annotator)
        return [_label(r) for r in self._db().execute(sql + " ORDER BY created, id", args)]

    def label_count(self, queue: Queue | str | None = None) -> int:
        """Active labels (all queues when none is given): what a crash test counts."""
        if queue is None:
            return self._db().execute("SELECT COUNT(*) FROM labels WHERE retracted IS NULL").fetchone()[0]
        q = self._queue(queue)
        return self._db().execute("SELECT COUNT(*) FROM labels WHERE queue_id = ? AND retracted IS NULL",
                                  (q.id,)).fetchone()[0]

    # -- summaries ---------------------------------------------------------------------------
    def progress(self, queue: Queue | str) -> Progress:
        q = self._queue(queue)
        db = self._db()
        items = db.execute("SELECT COUNT(*) FROM label_items WHERE queue_id = ?", (q.id,)).fetchone()[0]
        done = db.execute(
            "SELECT COUNT(*) FROM label_items i WHERE i.queue_id = ? AND (SELECT COUNT(*) FROM labels l"
            " WHERE l.item_id = i.id AND l.retracted IS NULL AND l.verdict != 'skip') >= i.required",
            (q.id,)).fetchone()[0]
        verdicts: Counter[str] = Counter()
        sides: Counter[str] = Counter()  # of people's labels only: imported labels have no real display side
        per_annotator: Counter[str] = Counter()
        for row in db.execute("SELECT annotator, verdict, kind FROM labels WHERE queue_id = ? AND retracted IS NULL",
                              (q.id,)):
            verdicts[row["verdict"]] += 1
            if row["kind"] == "human":
                sides[row["verdict"]] += 1
            if row["verdict"] != "skip":
                per_annotator[row["annotator"]] += 1
        sided = sides["left"] + sides["right"]
        return Progress(items=items, done=done, labels=sum(verdicts.values()), skipped=verdicts["skip"],
                        per_annotator=dict(per_annotator.most_common()),
                        left_share=sides["left"] / sided if sided else None)

    def rate_per_minute(self, queue: Queue | str, annotator: str, *, window_s: float = 300.0) -> float | None:
        """Labels per minute of this annotator over the last `window_s` seconds (None before two labels)."""
        q = self._queue(queue)
        since = time.time() - window_s
        times = [r[0] for r in self._db().execute(
            "SELECT created FROM labels WHERE queue_id = ? AND annotator = ? AND retracted IS NULL AND created >= ?"
            " ORDER BY created", (q.id, annotator, since))]
        if len(times) < 2 or times[-1] <= times[0]:
            return None
        return (len(times) - 1) / (times[-1] - times[0]) * 60.0


def _check_overlap(overlap: float, overlap_annotators: int) -> None:
    if not 0.0 <= overlap <= 1.0:
        raise LabelStoreError(f"Overlap is a share of items between 0 and 1; got {overlap}.")
    if overlap_annotators < 2:
        raise LabelStoreError(f"Overlap items need at least 2 annotators; got {overlap_annotators}.")


def _annotator(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise LabelStoreError("Labels need an annotator name (set yours in the labeling view or with --annotator).")
    return name


def _item_fields(raw: dict, index: int, mode: str) -> tuple[str, list[Candidate]]:
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise LabelStoreError(f"Item {index + 1} has no prompt text.")
    candidates = [Candidate.from_json(c) for c in raw.get("candidates") or []]
    if mode == "single":
        if len(candidates) != 1:
            raise LabelStoreError(f"Item {index + 1} has {len(candidates)} candidates; a single-answer queue takes "
                                  "exactly one (each answer is judged good or bad on its own).")
        return prompt, candidates
    if len(candidates) < 2:
        raise LabelStoreError(f"Item {index + 1} needs at least two candidate answers; it has {len(candidates)}.")
    if mode == "pair" and len(candidates) != 2:
        raise LabelStoreError(f"Item {index + 1} has {len(candidates)} candidates; a pair queue takes exactly two "
                              "(split them into pairs, or use a ranking queue).")
    return prompt, candidates


def _item(row: sqlite3.Row) -> Item:
    return Item(id=row["id"], queue_id=row["queue_id"], position=row["position"], prompt=row["prompt"],
                candidates=tuple(Candidate.from_json(c) for c in json.loads(row["candidates"])),
                meta=json.loads(row["meta"] or "{}"), required=row["required"])


def _label(row: sqlite3.Row) -> Label:
    return Label(id=row["id"], queue_id=row["queue_id"], item_id=row["item_id"], annotator=row["annotator"],
                 kind=row["kind"], verdict=row["verdict"], shown=tuple(json.loads(row["shown"])),
                 swapped=bool(row["swapped"]), ranking=tuple(json.loads(row["ranking"])) if row["ranking"] else None,
                 comment=row["comment"], seconds=row["seconds"], source=row["source"], created=row["created"],
                 retracted=row["retracted"])
