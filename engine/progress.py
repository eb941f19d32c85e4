"""`progress` events with an ETA, for every job: at most one a second however fast the work goes (the
last one always), the ETA from the rate of this attempt so far.

The rate counts work time when the caller measures it (a training step's time, without evaluations
and samples in between), wall time since the first update otherwise. A resumed run's rate starts at
its first update, not at step 0.
"""

from __future__ import annotations

import time

from engine.runner import JobContext


class ProgressMeter:
    """Report with `update(done)` (the caller counts), or `advance(amount, busy_s)` (the meter counts
    from `start`, and the work time too)."""

    def __init__(self, ctx: JobContext, stage: str, total: float | None, unit: str, interval_s: float = 1.0,
                 start: float | None = None):
        self.ctx, self.stage, self.total, self.unit, self.interval_s = ctx, stage, total, unit, interval_s
        self.done, self.busy_s = start or 0.0, 0.0
        # (done, time) where this attempt's rate starts: `start` now, else the first update
        self._first: tuple[float, float] | None = None if start is None else (start, time.monotonic())
        self._shown = float("-inf")

    def eta_s(self, done: float, busy_s: float | None = None) -> float | None:
        if self._first is None or self.total is None:
            return None
        first_done, first_time = self._first
        spent = busy_s if busy_s is not None else time.monotonic() - first_time
        progressed = done - first_done
        return spent / progressed * max(0.0, self.total - done) if progressed > 0 and spent > 0 else None

    def update(self, done: float, *, busy_s: float | None = None, step: int | None = None, force: bool = False,
               **fields) -> None:
        """Report `done` of `total` (`busy_s`: the work time since the first update, when measured);
        `step` goes to status.json (default: `done`); `fields` are added to the event (the variant and
        model an evaluation is answering)."""
        now = time.monotonic()
        self.done = done
        if self._first is None:
            self._first = (done, now)
        last = self.total is not None and done >= self.total
        if not (force or last) and now - self._shown < self.interval_s:
            return
        self._shown = now
        eta = self.eta_s(done, busy_s)
        self.ctx.events.emit("progress", stage=self.stage, done=round(done, 3), total=self.total, unit=self.unit,
                             eta_s=None if eta is None else round(eta, 1), **fields)
        self.ctx.update_status(step=int(done) if step is None else step)

    def advance(self, amount: float, busy_s: float, *, force: bool = False, **fields) -> None:
        """`amount` more done in `busy_s` seconds of work."""
        self.busy_s += busy_s
        self.update(self.done + amount, busy_s=self.busy_s, force=force, **fields)
