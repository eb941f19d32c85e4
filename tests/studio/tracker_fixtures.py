"""A stand-in for the run tracker: every member of `studio.client.run_tracker.Tracker`, recording what
the pages ask of it and starting no engine."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from studio.client.scheduler_states import SchedulerStates
from studio.client.schemas import EngineSchemas


class FakeCommand(QObject):
    """What a launch returns: the test emits `succeeded` or `failed` itself."""

    succeeded = Signal(object)
    failed = Signal(str)


class FakeTracker(QObject):
    run_added = Signal(str)
    run_events = Signal(str, list)
    run_state_changed = Signal(str, str)
    run_error = Signal(str, str)
    launch_failed = Signal(str)

    def __init__(self, store=None, engines: dict | None = None):
        super().__init__()
        self.store = store
        self.engines = dict(engines or {})
        self.default_engine = "local"
        self.schemas = EngineSchemas(self.engines, store, self)
        self.scheduler = SchedulerStates(self)
        self.launched: list[Path] = []
        self.engines_used: list[str | None] = []
        self.calls: list[tuple[str, str]] = []
        self.command = FakeCommand()

    def add_engine(self, engine) -> None:
        self.engines[engine.name] = engine

    def engine_for(self, run):
        return self.engines.get(self.default_engine)

    def launch(self, spec_path, engine: str | None = None) -> FakeCommand:
        self.launched.append(spec_path)
        self.engines_used.append(engine)
        return self.command

    def cancel(self, run_id: str, force: bool = False) -> FakeCommand:
        self.calls.append(("force cancel" if force else "cancel", run_id))
        return self.command

    def resume(self, run_id: str) -> FakeCommand:
        self.calls.append(("resume", run_id))
        return self.command

    def reattach_active(self) -> list[str]:
        return []

    def follow_new_runs(self) -> list[str]:
        return []

    def shutdown(self) -> None:
        pass


class FakeEngineCommand(QObject):
    """An engine command answered on the next turn of the event loop, as a process's would be."""

    succeeded = Signal(object)
    failed = Signal(str)

    def __init__(self, answer=None, exit_code: int = 0, stderr: str = ""):
        from PySide6.QtCore import QTimer

        from studio.client.engine import ProcessExit

        super().__init__()
        self.exit = None
        self._answer, self._exit = answer, ProcessExit(exit_code, False, stderr)
        QTimer.singleShot(0, self._finish)

    def stop(self) -> None:
        pass

    def _finish(self) -> None:
        self.exit = self._exit
        if self._exit.code == 0:
            self.succeeded.emit(self._answer)
        else:
            self.failed.emit(f"Could not check the spec: the spec is not valid.\n{self._exit.stderr}")


class FakeEngine:
    """An engine of the tracker without a process: `schema` answers `schema_text` (this studio's own
    unless given), `validate` answers valid or, with `invalid`, the engine's problem lines (exit 2).
    `validated` records the spec files it was asked to check."""

    def __init__(self, name: str, host: str | None = None, schema_text: str | None = None, invalid: str = ""):
        from types import SimpleNamespace

        from studio.models.engine_schema import own_schema

        self.name = name
        self.is_remote = host is not None
        self.target = SimpleNamespace(host=host)
        self.schema_text = schema_text or own_schema().text
        self.invalid = invalid
        self.validated: list[Path] = []

    def schema(self) -> FakeEngineCommand:
        return FakeEngineCommand(self.schema_text)

    def validate(self, spec_path) -> FakeEngineCommand:
        self.validated.append(Path(spec_path))
        return FakeEngineCommand(exit_code=2, stderr=self.invalid) if self.invalid else FakeEngineCommand("valid")
