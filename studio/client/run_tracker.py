"""Keeps the store in step with the runs on the engines.

Launching a run records it and attaches to it; every event batch from an attach stream is ingested
into the store (idempotent by seq) and re-emitted for the pages. On startup `reattach_active()`
catches up on what the runs wrote while the studio was closed and follows the ones still alive.
An attach stream that drops while its run is alive is retried with backoff, from the last stored
seq, so the history has no gap and no duplicate.
"""

from __future__ import annotations

import logging
from itertools import islice
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import yaml
from PySide6.QtCore import QObject, QTimer, Signal, SignalInstance

from engine.protocol import Event
from engine.rundir import ACTIVE_STATES, list_runs
from studio.client.engine import EngineCommand, EventStream, LocalEngine, ProcessExit
from studio.client.remote_engine import RemoteEngine
from studio.client.scheduler_states import SchedulerStates
from studio.client.schemas import EngineSchemas
from studio.models.store import RunRecord, Store

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 5000
RETRY_DELAYS_MS = (500, 1000, 2000, 5000, 10000, 30000)

ENGINE_GONE = {
    "type": "engine_gone",
    "message": "The engine process ended without saying how the run finished.",
    "hint": "Look at engine.log in the run folder; Resume continues from the last checkpoint.",
}


def _spec_fields(path: Path) -> dict[str, Any]:
    """kind, name and max_steps from a spec file (best effort: the engine validated it)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return {}
    if not isinstance(data, dict):
        return {}
    train = data.get("train") if isinstance(data.get("train"), dict) else {}
    steps = train.get("max_steps")
    return {"kind": data.get("kind") or "", "name": data.get("name") or "",
            "total_steps": steps if isinstance(steps, int) else None}


Engine = LocalEngine | RemoteEngine


@runtime_checkable
class Tracker(Protocol):
    """What the pages and the main window use of the run tracker: `RunTracker`, or a stand-in of a test
    with the same members. The signals are RunTracker's (see there)."""

    run_added: SignalInstance
    run_events: SignalInstance
    run_state_changed: SignalInstance
    run_error: SignalInstance
    launch_failed: SignalInstance
    store: Store
    engines: dict[str, Engine]
    default_engine: str
    schemas: EngineSchemas
    scheduler: SchedulerStates

    def add_engine(self, engine: Engine) -> None: ...
    def engine_for(self, run: RunRecord | str) -> Engine: ...
    def launch(self, spec_path: str | Path, engine: str | None = None) -> EngineCommand: ...
    def cancel(self, run_id: str, force: bool = False) -> EngineCommand: ...
    def resume(self, run_id: str) -> EngineCommand: ...
    def reattach_active(self) -> list[str]: ...
    def follow_new_runs(self) -> list[str]: ...
    def shutdown(self) -> None: ...


class RunTracker(QObject):
    """Joins the store and the engines.

    Signals:
      run_added(run_id)                 a run entered the store (launched, or found in the workspace)
      run_events(run_id, events)        new events of a run, in seq order, already in the store
      run_state_changed(run_id, state)  starting / running / completed / cancelled / failed
      run_error(run_id, message)        a sentence for the user about that run (attach, cancel, resume)
      launch_failed(message)            a run could not start (e.g. every problem of an invalid spec)
    """

    run_added = Signal(str)
    run_events = Signal(str, list)
    run_state_changed = Signal(str, str)
    run_error = Signal(str, str)
    launch_failed = Signal(str)

    def __init__(self, store: Store, engine: LocalEngine, parent: QObject | None = None):
        super().__init__(parent)
        self.store = store
        self.engines: dict[str, Engine] = {engine.name: engine}
        self.default_engine = engine.name
        self.schemas = EngineSchemas(self.engines, store, self)
        # The Slurm jobs of the runs followed (studio/client/scheduler_states.py).
        self.scheduler = SchedulerStates(self)
        self._streams: dict[str, EventStream] = {}
        self._retries: dict[str, int] = {}
        self._closing = False

    # ------------------------------------------------------------------------------ engines
    def add_engine(self, engine: Engine) -> None:
        self.engines[engine.name] = engine

    def engine_for(self, run: RunRecord | str) -> Engine:
        record = self.store.get_run(run) if isinstance(run, str) else run
        name = record.engine if record else self.default_engine
        return self.engines.get(name) or self.engines[self.default_engine]

    def _local_engines(self) -> list[LocalEngine]:
        """The engines whose workspace is a folder here (a remote engine's runs are seen by attaching)."""
        return [e for e in self.engines.values() if not e.is_remote]

    # ------------------------------------------------------------------------------ actions
    def launch(self, spec_path: str | Path, engine: str | None = None) -> EngineCommand:
        """Start a run from a spec file (detached); on success it is recorded and attached to."""
        target = self.engines[engine or self.default_engine]
        command = target.start_run(spec_path)
        command.succeeded.connect(lambda info: self._launched(target, Path(spec_path), info))
        command.failed.connect(self.launch_failed.emit)
        return command

    def _launched(self, engine: Engine, spec_path: Path, info: Any) -> None:
        if not isinstance(info, dict) or "run_id" not in info:
            self.launch_failed.emit(f"The engine started a run but did not say which: {info!r}.")
            return
        run_id, run_dir = info["run_id"], info.get("run_dir", "")
        resolved = Path(run_dir) / "spec.yaml" if run_dir else spec_path
        fields = _spec_fields(resolved if resolved.exists() else spec_path)
        self.store.add_run(run_id, engine=engine.name, run_dir=run_dir, state="starting",
                           pid=info.get("pid"), **fields)
        self.run_added.emit(run_id)
        self.run_state_changed.emit(run_id, "starting")
        self.attach(run_id)

    def cancel(self, run_id: str, force: bool = False) -> EngineCommand:
        """Ask the run to stop (it checkpoints, then ends as cancelled); `force` stops it at once."""
        command = self.engine_for(run_id).cancel(run_id, force=force)
        command.failed.connect(lambda message: self.run_error.emit(run_id, message))
        if force:
            command.succeeded.connect(lambda _: self._catch_up(run_id))
        return command

    def resume(self, run_id: str) -> EngineCommand:
        """Continue a stopped run from its last checkpoint; its events continue the same seq."""
        command = self.engine_for(run_id).resume(run_id)
        command.succeeded.connect(lambda _: self._resumed(run_id))
        command.failed.connect(lambda message: self.run_error.emit(run_id, message))
        return command

    def _resumed(self, run_id: str) -> None:
        self.store.set_run_state(run_id, "starting")
        self.run_state_changed.emit(run_id, "starting")
        self.attach(run_id)

    # ---------------------------------------------------------------------------- attaching
    def is_attached(self, run_id: str) -> bool:
        return run_id in self._streams

    def attached_runs(self) -> list[str]:
        return list(self._streams)

    def attach(self, run_id: str) -> EventStream | None:
        """Follow a run from its last stored seq on (no-op when already attached)."""
        if self._closing:
            return None
        if run_id in self._streams:
            return self._streams[run_id]
        record = self.store.get_run(run_id)
        from_seq = (record.last_seq if record else -1) + 1
        stream = self.engine_for(run_id).attach(run_id, from_seq=from_seq, follow=True)
        self._streams[run_id] = stream
        self.scheduler.watch(run_id)
        stream.events.connect(lambda events: self._ingest(run_id, events))
        stream.error.connect(lambda message: self.run_error.emit(run_id, message))
        stream.ended.connect(lambda exit: self._stream_ended(run_id, stream, exit))
        return stream

    def detach(self, run_id: str) -> None:
        """Stop following a run (the run itself goes on)."""
        stream = self._streams.pop(run_id, None)
        if stream is not None:
            stream.stop()

    def _ingest(self, run_id: str, events: list[Event]) -> list[Event]:
        before = self.store.get_run(run_id)
        new = self.store.add_events(run_id, events)
        if not new:
            return new
        self._retries.pop(run_id, None)
        self.run_events.emit(run_id, new)
        after = self.store.get_run(run_id)
        if after and (before is None or before.state != after.state):
            self.run_state_changed.emit(run_id, after.state)
        return new

    def _stream_ended(self, run_id: str, stream: EventStream, exit: ProcessExit) -> None:
        if self._streams.get(run_id) is stream:
            del self._streams[run_id]
        if self._closing or stream.mismatch or stream.stopped:
            return
        record = self.store.get_run(run_id)
        if record is None or not record.active:
            return
        engine = self.engine_for(record)
        status = engine.run_status(run_id)
        if status is not None and status.active:
            self._schedule_retry(run_id)
            return
        # The run is over: take what it wrote last from its folder, then settle its state.
        self._catch_up(run_id)
        record = self.store.get_run(run_id)
        if record is not None and record.active:
            if status is None and engine.run_directory(run_id) is None:
                error = dict(ENGINE_GONE, message=f"The folder of run {run_id} is gone or unreadable.")
            else:
                error = dict(ENGINE_GONE)
            detail = exit.stderr.strip()
            if detail:
                error["detail"] = detail[-2000:]
            self.store.set_run_state(run_id, "failed", error=error)
            self.run_state_changed.emit(run_id, "failed")

    def _schedule_retry(self, run_id: str) -> None:
        attempt = self._retries.get(run_id, 0)
        self._retries[run_id] = attempt + 1
        delay = RETRY_DELAYS_MS[min(attempt, len(RETRY_DELAYS_MS) - 1)]
        log.info("attach to %s dropped; retrying in %d ms", run_id, delay)
        QTimer.singleShot(delay, self, lambda: self._retry(run_id))

    def _retry(self, run_id: str) -> None:
        if not self._closing and run_id not in self._streams:
            self.attach(run_id)

    # ------------------------------------------------------------------------------ startup
    def _catch_up(self, run_id: str) -> int:
        """Ingest what the run's events.jsonl holds past the last stored seq (local run folders)."""
        record = self.store.get_run(run_id)
        if record is None:
            return 0
        events = self.engine_for(record).stored_events(run_id, record.last_seq + 1)
        count = 0
        while batch := list(islice(events, CATCH_UP_BATCH)):
            count += len(self._ingest(run_id, batch))
        return count

    def import_workspace(self) -> list[str]:
        """Record the run folders of the local engines' workspaces that the store does not know."""
        added = []
        for engine in self._local_engines():
            for run in list_runs(engine.workspace):
                if self.store.get_run(run.run_id) is not None:
                    continue
                status = run.read_status()
                fields = _spec_fields(run.spec_path)
                if status is not None:
                    fields["kind"] = status.kind or fields.get("kind", "")
                    fields["name"] = status.name or fields.get("name", "")
                self.store.add_run(run.run_id, engine=engine.name, run_dir=str(run.path),
                                   state="starting", created=run.spec_path.stat().st_mtime,
                                   pid=status.pid if status else None, host=status.host if status else None,
                                   **fields)
                added.append(run.run_id)
                self.run_added.emit(run.run_id)
        return added

    def reattach_active(self) -> list[str]:
        """On startup: catch up on every run that was not finished, and follow the ones alive.

        Looks at the store's unfinished runs and at the run folders in the workspaces (a run
        started from a terminal, or resumed while the studio was closed). Returns the run ids
        now attached.
        """
        candidates = {r.run_id for r in self.store.runs(state=ACTIVE_STATES)}
        candidates.update(self.import_workspace())
        for engine in self._local_engines():
            for run in list_runs(engine.workspace):
                status = run.effective_status()
                if status is not None and status.active:
                    candidates.add(run.run_id)
        return self._settle(candidates)

    def follow_new_runs(self) -> list[str]:
        """Record the run folders that appeared in the workspaces since the last look (a run started
        outside the studio: `studio-engine demo`, a terminal), catch up on them and follow the live
        ones. Returns the run ids added."""
        added = self.import_workspace()
        self._settle(added)
        return added

    def _settle(self, candidates: set[str] | list[str]) -> list[str]:
        """Catch up on these runs; follow the ones alive, settle the state of the ones gone."""
        attached = []
        for run_id in sorted(candidates):
            record = self.store.get_run(run_id)
            engine = self.engine_for(record)
            self._catch_up(run_id)
            record = self.store.get_run(run_id)
            status = engine.run_status(run_id)
            if status is not None and status.active:
                self.attach(run_id)
                attached.append(run_id)
            elif record.active:
                # Finished while we were away without a `finished` event (killed, machine rebooted).
                final = status.state if status is not None and status.state not in ACTIVE_STATES else "failed"
                self.store.set_run_state(run_id, final, error=dict(ENGINE_GONE) if final == "failed" else None)
                self.run_state_changed.emit(run_id, final)
        return attached

    def shutdown(self) -> None:
        """Stop following every run (on quit). The runs themselves keep going."""
        self._closing = True
        self.scheduler.stop()
        for run_id in list(self._streams):
            self.detach(run_id)
        for engine in self.engines.values():
            engine.stop_all(wait_ms=1000)
