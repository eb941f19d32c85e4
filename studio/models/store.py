"""The studio's local database (store.db): runs, their metrics and events, settings, and playground
sessions.

Qt-free on purpose: the run tracker feeds it event batches, pages read from it, and tests use it
without a display. SQLite in WAL mode, through sqlite-utils for the schema and plain executemany for
the hot paths (a long run sends hundreds of thousands of metric values).

Ingestion is idempotent by `seq`: re-attaching to a run from an earlier seq, or reading its
events.jsonl again after a restart, never duplicates a row or moves a run's state backwards.

The folder of a run on this computer, and the models and files a playground session names, are kept
relative to the workspace (the folder of store.db) and resolved when read, so a workspace that is
moved or copied keeps them; a run on an SSH engine keeps its remote folder as it is.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import sqlite_utils

from engine.kinds import KINDS, Headline
from engine.rundir import ACTIVE_STATES, RUN_STATES
from engine.workspace_paths import artifact_path, portable_path, portable_paths, resolved_paths

Event = dict[str, Any]
BUSY_TIMEOUT_S = 120.0  # how long one attempt to write waits for another writer before it tries again

log = logging.getLogger(__name__)

# Events kept whole in the events table; metrics go to their own table (and, for evaluation cells —
# metric events that name a `model` — to both), heartbeats and progress only update the run row.
STORED_EVENT_TYPES = ("started", "log", "sample", "artifact", "finished")
_SERIES_DTYPE = np.dtype([("step", np.int64), ("t", np.float64), ("value", np.float64)])
FINISHED_STATES = tuple(s for s in RUN_STATES if s not in ACTIVE_STATES and s != "queued")

_RUN_COLUMNS = {
    "run_id": str, "kind": str, "name": str, "state": str, "engine": str, "run_dir": str,
    "host": str, "pid": int, "created": float, "updated": float, "last_seq": int,
    "step": int, "total_steps": int, "eta_s": float, "progress_stage": str,
    "progress_done": float, "progress_total": float, "progress_unit": str,
    "summary": str, "error": str, "notes": str, "tags": str,
}


_SESSION_PARTS = ("variants", "models", "rows", "outputs", "extra")
_SESSION_PATH_PARTS = ("models", "extra")  # name models and data files: kept relative to the workspace
_SESSION_COLUMNS = {"name": str, **{part: str for part in _SESSION_PARTS}, "created": float, "updated": float}


@dataclass
class PlaygroundSessionRecord:
    """A saved playground session: its variants, models (with their sampling), variable rows and
    answers, as JSON; `extra` holds the rest (variables, chat, batch settings)."""

    name: str
    variants: list = field(default_factory=list)
    models: list = field(default_factory=list)
    rows: list = field(default_factory=list)
    outputs: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    created: float | None = None
    updated: float | None = None


@dataclass
class RunRecord:
    """One row of the runs table. `summary` and `error` come from the run's `finished` event."""

    run_id: str
    kind: str = ""
    name: str = ""
    state: str = "starting"
    engine: str = "local"
    run_dir: str = ""
    host: str | None = None
    pid: int | None = None
    created: float | None = None
    updated: float | None = None
    last_seq: int = -1
    step: int | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    progress_stage: str | None = None
    progress_done: float | None = None
    progress_total: float | None = None
    progress_unit: str | None = None
    summary: dict = field(default_factory=dict)
    error: dict | None = None
    notes: str = ""  # the user's, about the run
    tags: str = ""  # the user's, comma-separated

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    @property
    def duration_s(self) -> float | None:
        """How long it ran: the engine's own figure when it finished, else from its start to its last
        word (to now while it runs)."""
        measured = self.summary.get("duration_s")
        if isinstance(measured, (int, float)):
            return float(measured)
        if self.created is None:
            return None
        end = time.time() if self.active else self.updated
        return max(0.0, end - self.created) if end else None

    @property
    def when(self) -> str:
        """When it started, short ("Nov 23 09:51"): what tells runs of one name apart."""
        return time.strftime("%b %d %H:%M", time.localtime(self.created)) if self.created else "?"

    @classmethod
    def from_row(cls, row: dict) -> RunRecord:
        data = dict(row)
        data["summary"] = json.loads(data["summary"]) if data.get("summary") else {}
        data["error"] = json.loads(data["error"]) if data.get("error") else None
        data["last_seq"] = -1 if data.get("last_seq") is None else data["last_seq"]
        for key in ("kind", "name", "run_dir", "notes", "tags"):
            data[key] = data.get(key) or ""
        data["engine"] = data.get("engine") or "local"
        data["state"] = data.get("state") or "starting"
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _number(value: Any) -> float | None:
    """A metric value as a float, or None (stored as NULL, read back as NaN)."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return None


# Progress units that count a run's training steps (PPO counts iterations: its metrics' steps).
STEP_UNITS = ("step", "steps", "iteration", "iterations")


def headline_value(figure: Headline, value: float) -> str:
    """A headline figure's value as the studio shows it: a share as a percentage."""
    return f"{value:.0%}" if figure.share else f"{value:.3g}"


def event_step(event: Event) -> int | None:
    """The step a run has reached by what `event` says, or None when it says nothing of it: a
    progress event counted in steps (or PPO's iterations), a training metric, a checkpoint, the
    `finished` summary's step (where Stop left it), or the step a resumed run starts again from. The run's step is that of the latest event that
    says one: the store, the monitor's header and the jobs dock all read it so."""
    kind = event.get("type")
    if kind == "progress" and event.get("unit") in STEP_UNITS:
        value = event.get("done")
    elif kind == "metric" and (event.get("split") or "train") == "train":
        value = event.get("step")
    elif kind == "artifact" and event.get("kind") == "checkpoint":
        meta = event.get("meta") or {}
        value = meta.get("step", meta.get("iteration"))
    elif kind == "finished":
        value = (event.get("summary") or {}).get("step")
    elif kind == "started":
        value = event.get("resumed_from_step")  # a resumed run goes on from its checkpoint
    else:
        return None
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def spec_total_steps(spec: Any) -> int | None:
    """The steps a run's spec will train for: `train.max_steps`, or PPO's `train.iterations`."""
    train = spec.get("train") if isinstance(spec, dict) else None
    if not isinstance(train, dict):
        return None
    total = train.get("max_steps", train.get("iterations"))
    return total if isinstance(total, int) and not isinstance(total, bool) else None


class Store:
    """The studio database at `path` (created with its tables if missing), in the workspace that
    holds it."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.workspace = self.path.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # The engine's label commands and label server write this file too, a large import in one long
        # transaction: a write here waits for them (SQLite's busy timeout) instead of giving up after
        # sqlite3's default 5 s and losing what it was writing.
        self.conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S)
        self.db = sqlite_utils.Database(self.conn)
        self.db.enable_wal()
        self.conn.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
        self._create_tables()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, its lock taken up front (BEGIN IMMEDIATE): a writer that waits for
        another one queues behind it, and never meets the busy error SQLite gives, without waiting, to a
        transaction that read first and wants to write after another writer committed."""
        for attempt in itertools.count():
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as e:
                # Busy past the timeout: keep waiting (a write is never dropped), saying so in the log.
                if getattr(e, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                    raise
                log.warning("store.db is still busy after %.0f s (attempt %d); waiting on", BUSY_TIMEOUT_S,
                            attempt + 1)
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.rollback()
            raise
        if self.conn.in_transaction:  # sqlite-utils commits its own statements
            self.conn.commit()

    def _create_tables(self) -> None:
        db = self.db
        if "runs" not in db.table_names():
            db["runs"].create(_RUN_COLUMNS, pk="run_id", defaults={"last_seq": -1})
            db["runs"].create_index(["state"])
            db["runs"].create_index(["kind"])
        for column in ("notes", "tags"):  # a store made before runs had notes and tags
            if column not in db["runs"].columns_dict:
                db["runs"].add_column(column, str)
        # Clustered on the series key: reading one series is one range scan of one b-tree, and the
        # primary key makes re-ingesting a seq a no-op (INSERT OR IGNORE).
        self.conn.execute(
            """CREATE TABLE IF NOT EXISTS metrics (
                   run_id TEXT NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL,
                   step INTEGER NOT NULL, seq INTEGER NOT NULL, t REAL, value REAL,
                   PRIMARY KEY (run_id, split, name, step, seq)
               ) WITHOUT ROWID"""
        )
        self.conn.execute(
            """CREATE TABLE IF NOT EXISTS events (
                   run_id TEXT NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL, t REAL,
                   json TEXT NOT NULL, PRIMARY KEY (run_id, seq)
               ) WITHOUT ROWID"""
        )
        if "settings" not in db.table_names():
            db["settings"].create({"key": str, "value": str}, pk="key")
        if "playground_sessions" not in db.table_names():
            db["playground_sessions"].create(_SESSION_COLUMNS, pk="name")
        self.conn.execute(
            """CREATE TABLE IF NOT EXISTS engine_schemas (
                   engine TEXT NOT NULL, hash TEXT NOT NULL, schema TEXT NOT NULL, fetched REAL NOT NULL,
                   PRIMARY KEY (engine, hash)
               )"""
        )
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    # ----------------------------------------------------------------------------------- runs
    def add_run(self, run_id: str, *, kind: str = "", name: str = "", engine: str = "local",
                run_dir: str | Path = "", state: str = "starting", created: float | None = None,
                pid: int | None = None, host: str | None = None, total_steps: int | None = None) -> RunRecord:
        """Record a run (or fill in what an existing record lacks); never rewinds its last_seq."""
        now = time.time()
        existing = self.get_run(run_id)
        if run_dir and engine == "local":
            run_dir = portable_path(str(run_dir), self.workspace)
        with self._write():
            if existing is None:
                self.db["runs"].insert({
                    "run_id": run_id, "kind": kind, "name": name or run_id, "engine": engine,
                    "run_dir": str(run_dir), "state": state, "created": created or now, "updated": now,
                    "last_seq": -1, "pid": pid, "host": host, "total_steps": total_steps,
                })
            else:
                updates = {"kind": kind, "name": name, "engine": engine, "run_dir": str(run_dir) if run_dir else "",
                           "pid": pid, "host": host, "total_steps": total_steps}
                updates = {k: v for k, v in updates.items() if v}
                updates["updated"] = now
                self.db["runs"].update(run_id, updates)
        return self.get_run(run_id)

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        cols = [d[0] for d in self.conn.execute("SELECT * FROM runs LIMIT 0").description]
        return self._record(dict(zip(cols, row)))

    def _record(self, row: dict) -> RunRecord:
        record = RunRecord.from_row(row)
        if record.run_dir and record.engine == "local":
            record.run_dir = artifact_path(record.run_dir, self.workspace)  # there or not (yet)
        return record

    def runs(self, kind: str | None = None, state: str | Sequence[str] | None = None,
             text: str | None = None) -> list[RunRecord]:
        """Runs, newest first. `state` is one state, several, or "active" (starting or running);
        `text` matches the name, the run id, the tags or the notes, case-insensitively."""
        where, params = [], []
        if kind:
            where.append("kind = ?")
            params.append(kind)
        if state:
            states = list(ACTIVE_STATES) if state == "active" else [state] if isinstance(state, str) else list(state)
            where.append(f"state IN ({','.join('?' * len(states))})")
            params.extend(states)
        if text:
            columns = ("name", "run_id", "tags", "notes")
            where.append("(" + " OR ".join(f"{c} LIKE ? ESCAPE '\\'" for c in columns) + ")")
            pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            params += [pattern] * len(columns)
        sql = "SELECT * FROM runs" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY created DESC, run_id"
        cursor = self.conn.execute(sql, params)
        cols = [d[0] for d in cursor.description]
        return [self._record(dict(zip(cols, row))) for row in cursor.fetchall()]

    def kinds(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT kind FROM runs WHERE kind != '' ORDER BY kind")]

    def set_run_state(self, run_id: str, state: str, error: dict | None = None) -> None:
        """Set a state the events did not say (e.g. the engine died without `finished`)."""
        updates: dict[str, Any] = {"state": state, "updated": time.time()}
        if error is not None:
            updates["error"] = json.dumps(error)
        with self._write():
            self.db["runs"].update(run_id, updates)

    def set_run_notes(self, run_id: str, *, notes: str | None = None, tags: str | None = None) -> None:
        """The user's notes and tags of a run (tags: comma-separated; spaces around them dropped)."""
        updates: dict[str, Any] = {}
        if notes is not None:
            updates["notes"] = notes.strip()
        if tags is not None:
            updates["tags"] = ", ".join(dict.fromkeys(t.strip() for t in tags.split(",") if t.strip()))
        if updates:
            with self._write():
                self.db["runs"].update(run_id, updates)

    def delete_run(self, run_id: str) -> None:
        with self._write():
            for table in ("metrics", "events", "runs"):
                self.conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    # --------------------------------------------------------------------------------- events
    def add_events(self, run_id: str, events: Iterable[Event]) -> list[Event]:
        """Ingest a batch of events of one run in one transaction; returns the events that were new.

        Rows are keyed by seq, so a seq seen before is ignored; the run's state and progress only
        move forward (from events past the stored last_seq).
        """
        batch = sorted((e for e in events if isinstance(e.get("seq"), int)), key=lambda e: e["seq"])
        if not batch:
            return []
        if self.get_run(run_id) is None:
            self.add_run(run_id)
        last_seq = self.conn.execute("SELECT last_seq FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]
        last_seq = -1 if last_seq is None else last_seq
        metric_rows, event_rows, updates = [], [], {}
        new = []
        for event in batch:
            seq, kind, t = event["seq"], event.get("type"), event.get("t")
            if kind == "metric":
                step, split = event.get("step"), event.get("split") or "train"
                values = event.get("values") or {}
                if isinstance(step, (int, float)) and isinstance(values, dict):
                    metric_rows.extend((run_id, split, str(name), int(step), seq, t, _number(v))
                                       for name, v in values.items())
                if event.get("model") is not None:
                    # An evaluation cell (a variant or task × a model): its standard errors and what
                    # it scored are only in the event, so the event is kept whole too (few per run).
                    event_rows.append((run_id, seq, kind, t, json.dumps(event, ensure_ascii=False, default=str)))
            elif kind in STORED_EVENT_TYPES:
                event_rows.append((run_id, seq, kind, t, json.dumps(event, ensure_ascii=False, default=str)))
            if seq > last_seq:
                new.append(event)
                self._run_updates(event, updates)
        with self._write():
            if metric_rows:
                self.conn.executemany("INSERT OR IGNORE INTO metrics VALUES (?,?,?,?,?,?,?)", metric_rows)
            if event_rows:
                self.conn.executemany("INSERT OR IGNORE INTO events VALUES (?,?,?,?,?)", event_rows)
            if new:
                updates["last_seq"] = new[-1]["seq"]
                updates["updated"] = time.time()
                sets = ", ".join(f"{k} = ?" for k in updates)
                self.conn.execute(f"UPDATE runs SET {sets} WHERE run_id = ?", [*updates.values(), run_id])
        return new

    @staticmethod
    def _run_updates(event: Event, updates: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "started":
            spec = event.get("spec") if isinstance(event.get("spec"), dict) else {}
            updates["state"] = "running"
            updates["error"] = None
            if event.get("pid"):
                updates["pid"] = event["pid"]
            if event.get("host"):
                updates["host"] = event["host"]
            if spec.get("kind"):
                updates["kind"] = spec["kind"]
            if spec.get("name"):
                updates["name"] = spec["name"]
            max_steps = spec_total_steps(spec)
            if max_steps is not None:
                updates["total_steps"] = max_steps
        elif kind == "progress":
            updates.update(progress_stage=event.get("stage"), progress_done=event.get("done"),
                           progress_total=event.get("total"), progress_unit=event.get("unit"),
                           eta_s=event.get("eta_s"))
            if event.get("unit") in STEP_UNITS and isinstance(event.get("total"), (int, float)):
                updates["total_steps"] = int(event["total"])
        step = event_step(event)
        if step is not None:
            updates["step"] = step
        if kind == "finished":
            status = event.get("status")
            updates["state"] = status if status in FINISHED_STATES else "failed"
            updates["summary"] = json.dumps(event.get("summary") or {}, default=str)
            updates["error"] = json.dumps(event["error"], default=str) if event.get("error") else None
            updates["eta_s"] = None

    def events(self, run_id: str, types: Sequence[str] | str | None = None,
               from_seq: int = 0, limit: int | None = None) -> list[Event]:
        """Stored events (started, log, sample, artifact, finished) of a run in seq order."""
        sql, params = "SELECT json FROM events WHERE run_id = ? AND seq >= ?", [run_id, from_seq]
        if types:
            types = [types] if isinstance(types, str) else list(types)
            sql += f" AND type IN ({','.join('?' * len(types))})"
            params += types
        sql += " ORDER BY seq"
        if limit:
            sql += " LIMIT ?"
            params.append(limit)
        return [json.loads(r[0]) for r in self.conn.execute(sql, params)]

    # -------------------------------------------------------------------------------- metrics
    def metric_names(self, run_id: str, split: str | None = None) -> list[tuple[str, str]]:
        """(split, name) pairs of a run's metric series, sorted."""
        # Skip-scan over the primary key: one probe per distinct series, not a scan of every row.
        out, after = [], ("", "")
        while True:
            sql = ("SELECT split, name FROM metrics WHERE run_id = ? AND (split > ? OR (split = ? AND name > ?))"
                   + (" AND split = ?" if split else "") + " ORDER BY split, name LIMIT 1")
            params = [run_id, after[0], after[0], after[1]] + ([split] if split else [])
            row = self.conn.execute(sql, params).fetchone()
            if row is None:
                return out
            out.append((row[0], row[1]))
            after = (row[0], row[1])

    def metric_series(self, run_id: str, split: str, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(steps int64, times float64, values float64; missing values are NaN), ordered by step.

        Where a resumed run logged a step again, the later value (higher seq) wins.
        """
        # fromiter over the cursor skips the list of tuples; NULL comes back as the string 'NaN',
        # which numpy parses, so the common all-numbers case never leaves C.
        cursor = self.conn.execute(
            "SELECT step, IFNULL(t, 'NaN'), IFNULL(value, 'NaN') FROM metrics "
            "WHERE run_id = ? AND split = ? AND name = ? ORDER BY step, seq",
            (run_id, split, name),
        )
        rows = np.fromiter(cursor, dtype=_SERIES_DTYPE)
        if len(rows) > 1:
            last_of_step = np.append(rows["step"][1:] != rows["step"][:-1], True)
            if not last_of_step.all():
                rows = rows[last_of_step]
        return rows["step"].copy(), rows["t"].copy(), rows["value"].copy()

    def last_metric(self, run_id: str, split: str, name: str) -> float | None:
        row = self.conn.execute(
            "SELECT value FROM metrics WHERE run_id = ? AND split = ? AND name = ? ORDER BY step DESC, seq DESC LIMIT 1",
            (run_id, split, name),
        ).fetchone()
        return None if row is None else row[0]

    def headline_series(self, run_id: str, kind: str) -> tuple[Headline, np.ndarray] | None:
        """The figure a run of `kind` is judged by (the first of the kind's headlines it has logged) and
        its values in step order; None when it has none."""
        for figure in KINDS[kind].headlines if kind in KINDS else ():
            _, _, values = self.metric_series(run_id, figure.split, figure.metric)
            if len(values):
                return figure, values
        return None

    def final_loss(self, run: RunRecord | str) -> float | None:
        """The loss to show for a run: the last training loss logged, else one from its summary."""
        record = self.get_run(run) if isinstance(run, str) else run
        if record is None:
            return None
        value = self.last_metric(record.run_id, "train", "loss")
        if value is None:
            for key in ("final_loss", "train_loss", "loss", "eval_loss"):
                if isinstance(record.summary.get(key), (int, float)):
                    return float(record.summary[key])
        return value

    # ------------------------------------------------------------------------------- settings
    def get_setting(self, key: str, default: Any = None) -> Any:
        row = self.conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row[0])

    def set_setting(self, key: str, value: Any) -> None:
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    # ------------------------------------------------------------------ the engines' spec schemas
    def cache_schema(self, engine: str, schema_hash: str, text: str) -> None:
        """Keep what `studio-engine schema` printed on `engine`, under its hash."""
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO engine_schemas (engine, hash, schema, fetched) VALUES (?, ?, ?, ?)",
                              (engine, schema_hash, text, time.time()))

    def cached_schema(self, engine: str, schema_hash: str | None = None) -> str | None:
        """The schema text `engine` printed with this hash, or (no hash given) the last one fetched from it."""
        if schema_hash is not None:
            row = self.conn.execute("SELECT schema FROM engine_schemas WHERE engine = ? AND hash = ?",
                                    (engine, schema_hash)).fetchone()
        else:
            row = self.conn.execute("SELECT schema FROM engine_schemas WHERE engine = ? ORDER BY fetched DESC LIMIT 1",
                                    (engine,)).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------------- playground sessions
    def save_playground_session(self, name: str, *, variants: list, models: list, rows: list, outputs: dict,
                                extra: dict | None = None) -> PlaygroundSessionRecord:
        """Create or replace the session `name` (its creation time is kept), in one transaction."""
        name = name.strip()
        if not name:
            raise ValueError("A playground session needs a name.")
        now = time.time()
        existing = self.playground_session(name)
        row = {"name": name, "created": existing.created if existing else now, "updated": now}
        for part, value in zip(_SESSION_PARTS, (variants, models, rows, outputs, extra or {})):
            if part in _SESSION_PATH_PARTS:
                value = portable_paths(value, self.workspace)
            row[part] = json.dumps(value, ensure_ascii=False)
        with self._write():
            self.db["playground_sessions"].upsert(row, pk="name")
        return self.playground_session(name)

    def playground_session(self, name: str) -> PlaygroundSessionRecord | None:
        cursor = self.conn.execute("SELECT * FROM playground_sessions WHERE name = ?", (name,))
        row = cursor.fetchone()
        if row is None:
            return None
        data = dict(zip([d[0] for d in cursor.description], row))
        for part in _SESSION_PARTS:
            data[part] = json.loads(data[part]) if data.get(part) else ({} if part in ("outputs", "extra") else [])
            if part in _SESSION_PATH_PARTS:
                data[part] = resolved_paths(data[part], self.workspace)
        return PlaygroundSessionRecord(**data)

    def playground_sessions(self) -> list[str]:
        """Names of the saved sessions, most recently saved first."""
        return [r[0] for r in self.conn.execute("SELECT name FROM playground_sessions ORDER BY updated DESC, name")]

    def delete_playground_session(self, name: str) -> None:
        with self._write():
            self.conn.execute("DELETE FROM playground_sessions WHERE name = ?", (name,))
