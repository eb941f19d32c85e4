"""The scheduler's view of the runs the studio follows: for a run submitted to Slurm, its job's state
(pending and why, running on which nodes, requeued how often), read from `studio-engine show RUN --json`
through the engine that holds the run (`LocalEngine` or `RemoteEngine`, whichever the tracker names).

Only runs their engine calls scheduled (`engine.scheduled(run_id)`) are asked about, every
`POLL_MS` while they are active and once more when they end, so a studio following ordinary runs starts
no extra process and an SSH engine gets one short command per Slurm run and poll.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from engine.rundir import ACTIVE_STATES

POLL_MS = 10_000


class SchedulerStates(QObject):
    """Signals: `changed(run_id, slurm)` with the `slurm` dict of `show --json` when it differs from the
    last one. `state(run_id)` is the last one seen (None: not a Slurm run, or not asked yet). Public for
    tests: `timer` (its interval is POLL_MS)."""

    changed = Signal(str, object)

    def __init__(self, tracker: Any, parent: QObject | None = None):
        super().__init__(parent if parent is not None else tracker)
        self.tracker = tracker
        self._states: dict[str, dict] = {}
        self._watched: set[str] = set()
        self._asking: dict[str, Any] = {}
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.timer.timeout.connect(self._poll)
        tracker.run_state_changed.connect(self._run_state_changed)

    def state(self, run_id: str) -> dict | None:
        return self._states.get(run_id)

    def watch(self, run_id: str) -> None:
        """Follow the job of this run, if its engine submitted it to a scheduler."""
        if run_id in self._watched:
            return
        engine = self._engine(run_id)
        scheduled = getattr(engine, "scheduled", None)
        if scheduled is None or not scheduled(run_id):
            return
        self._watched.add(run_id)
        self._ask(run_id)
        if not self.timer.isActive():
            self.timer.start()

    def stop(self) -> None:
        """Ask no more (on quit)."""
        self.timer.stop()
        self._watched.clear()
        for command in list(self._asking.values()):
            command.stop()
        self._asking.clear()

    def _engine(self, run_id: str) -> Any:
        try:
            return self.tracker.engine_for(run_id)
        except KeyError:
            return None

    def _poll(self) -> None:
        for run_id in list(self._watched):
            self._ask(run_id)
        if not self._watched:
            self.timer.stop()

    def _ask(self, run_id: str) -> None:
        engine = self._engine(run_id)
        if run_id in self._asking or engine is None:
            return
        command = engine.show(run_id)
        self._asking[run_id] = command
        command.succeeded.connect(lambda answer: self._answer(run_id, answer))
        command.done.connect(lambda: self._asking.pop(run_id, None))

    def _answer(self, run_id: str, answer: Any) -> None:
        slurm = answer.get("slurm") if isinstance(answer, dict) else None
        if not isinstance(slurm, dict):
            self._watched.discard(run_id)
            return
        # The job outlives the run's `finished` by a moment (its batch script ends after the engine): asked
        # until Slurm lets go of it too, so the last state shown is the job's last.
        if answer.get("state") not in ACTIVE_STATES and not slurm.get("active"):
            self._watched.discard(run_id)
        if slurm != self._states.get(run_id):
            self._states[run_id] = slurm
            self.changed.emit(run_id, slurm)

    def _run_state_changed(self, run_id: str, state: str) -> None:
        if state in ACTIVE_STATES:
            self.watch(run_id)
        elif run_id in self._states:
            self._watched.add(run_id)  # until the job's last word (COMPLETED, CANCELLED, TIMEOUT…)
            self._ask(run_id)
            if not self.timer.isActive():
                self.timer.start()
