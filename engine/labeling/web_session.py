"""Annotator sessions of the web labeling page: who is shown what, and what a click does.

Free of Gradio so it can be read and tested on its own: `web_page.py` turns a `PageView` into
components, `web.py` serves it. One browser tab (or API client) is one session; each session holds
the task the store handed to its annotator (`LabelStore.next_task`, which claims the item), the
moment it was shown (the label's `seconds`) and its queue. Labels go through `LabelStore.add_label`
with `source="web"`, one transaction each, so the studio can label the same queue at the same time.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

from engine.labeling.store import CLAIM_SECONDS, LabelStore, LabelStoreError, Queue, Task, verdicts_for

MAX_NAME_LENGTH = 64
_RANK_SEPARATORS = re.compile(r"[\s,;>]+")


@dataclass
class Session:
    queue: str
    annotator: str
    task: Task | None = None
    shown_at: float = 0.0
    # One action at a time per tab: a key held down must not label an item the annotator never saw.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


@dataclass(frozen=True)
class PageView:
    """What one annotator's page shows after an action. `answers` are in display order (left first)."""

    queue: str
    mode: str
    annotator: str
    status: str
    progress: str
    guidelines: str
    prompt: str = ""
    answers: tuple[str, ...] = ()
    item_id: int | None = None
    position: int | None = None
    shown: tuple[int, ...] = ()
    finished: bool = False
    saved: bool = False  # this action recorded a label (the page clears the comment)
    counts: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        """The machine-readable part, for API clients (no answer texts: they are in the answer panels)."""
        return {"queue": self.queue, "mode": self.mode, "annotator": self.annotator, "item_id": self.item_id,
                "position": self.position, "shown": list(self.shown), "finished": self.finished,
                "saved": self.saved, "status": self.status, **self.counts}


def check_annotator(name: str | None) -> str:
    """The annotator name as stored, or a LabelStoreError saying what is wrong with it."""
    name = (name or "").strip()
    if not name:
        raise LabelStoreError("Type your name first: each label records who gave it.")
    if len(name) > MAX_NAME_LENGTH or any(ord(c) < 32 for c in name):
        raise LabelStoreError(f"A name is one line of at most {MAX_NAME_LENGTH} characters.")
    return name


def parse_ranking(text: str, count: int) -> list[int]:
    """Display numbers (1 = first answer shown), best first, from '2 1 3', '2>1>3', '2,1,3' or '213'."""
    text = (text or "").strip()
    parts = [p for p in _RANK_SEPARATORS.split(text) if p]
    if len(parts) == 1 and count <= 9 and len(parts[0]) == count and parts[0].isdigit():
        parts = list(parts[0])
    try:
        order = [int(p) for p in parts]
    except ValueError:
        order = []
    if sorted(order) != list(range(1, count + 1)):
        example = " ".join(str(i) for i in range(count, 0, -1))
        raise LabelStoreError(f"Give every answer number from 1 to {count} once, best first (for example "
                              f"'{example}'); got {text!r}.")
    return order


class AnnotatorSessions:
    """The sessions of one label server over one store. Thread-safe: Gradio calls it from a thread pool."""

    def __init__(self, store: LabelStore, default_queue: str, *, source: str = "web"):
        self.store = store
        self.default_queue = default_queue
        self.source = source
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # -- what the page offers ----------------------------------------------------------------
    def queue_names(self) -> list[str]:
        return [q.name for q in self.store.queues()]

    def max_candidates(self) -> int:
        """The most answers an item of the store has now (pair queues: 2): the page's answer panels."""
        counts = [len(item.candidates) for q in self.store.queues() if q.mode == "rank" for item in self.store.items(q)]
        return max([2, *counts])

    # -- actions -----------------------------------------------------------------------------
    def start(self, session_id: str, queue: str | None, annotator: str | None) -> PageView:
        """Begin (or go on) labeling `queue` as `annotator` in this session: show their current item."""
        try:
            session, _ = self._session(session_id, queue, annotator)
        except LabelStoreError as e:
            return self._blank(queue, annotator, str(e))
        with session.lock:
            if session.task is None:
                self._hand_out(session)
            return self._view(session, "")

    def label(self, session_id: str, queue: str | None, annotator: str | None, verdict: str,
              comment: str = "", ranking_text: str | None = None, item_id: int | None = None) -> PageView:
        """Record `verdict` for the item this session shows, then show the next one.

        For `rank`, `ranking_text` orders the shown answers by their display numbers, best first.
        `item_id` is the item the page showed (None: whatever this session shows); when the session
        shows another one, nothing is recorded. A session that was not showing anything yet (a new
        tab, a changed name) only gets its item.
        """
        try:
            session, fresh = self._session(session_id, queue, annotator)
        except LabelStoreError as e:
            return self._blank(queue, annotator, str(e))
        with session.lock:
            return self._label(session, fresh, verdict, comment, ranking_text, item_id)

    def _label(self, session: Session, fresh: bool, verdict: str, comment: str, ranking_text: str | None,
               item_id: int | None) -> PageView:
        if item_id is not None and session.task is not None and session.task.item.id != int(item_id):
            return self._view(session, "Nothing recorded: the page was showing an older item; here is yours now.")
        if fresh or session.task is None:
            if session.task is None:
                self._hand_out(session)
            return self._view(session, "Here is your item: nothing was recorded yet.")
        task = session.task
        if time.time() - session.shown_at > 0.9 * CLAIM_SECONDS:
            # The claim may have lapsed and the item gone to someone else: claim again before labeling.
            current = self.store.next_task(session.queue, session.annotator)
            if current is None or (current.item.id, current.shown) != (task.item.id, task.shown):
                session.task, session.shown_at = current, time.time()
                return self._view(session, f"Nothing recorded: this item waited more than {CLAIM_SECONDS / 60:.0f} "
                                           "minutes and went back to the queue. Here is your item now.")
        allowed = verdicts_for(len(task.shown))
        ranking = order = None
        try:
            if verdict not in allowed:
                raise LabelStoreError(f"this item takes one of {', '.join(allowed)}, not {verdict!r}.")
            if verdict == "rank":
                order = parse_ranking(ranking_text or "", len(task.shown))
                ranking = [task.shown[d - 1] for d in order]
        except LabelStoreError as e:
            return self._view(session, f"Not saved: {e}")  # the item stays: the annotator corrects the answer
        saved = False
        try:
            self.store.add_label(task, verdict, ranking=ranking, comment=comment or "",
                                 seconds=round(time.time() - session.shown_at, 3), source=self.source)
        except LabelStoreError as e:
            status = f"Not saved: {e}"  # labeled in another tab or in the studio meanwhile: move on
        else:
            saved, status = True, f"Saved: {_verdict_words(verdict, order)} for item {task.item.position + 1}."
        self._hand_out(session)
        return self._view(session, status, saved=saved)

    def undo(self, session_id: str, queue: str | None, annotator: str | None) -> PageView:
        """Take back this annotator's latest label in the queue and show that item again, as it was shown."""
        try:
            session, _ = self._session(session_id, queue, annotator)
        except LabelStoreError as e:
            return self._blank(queue, annotator, str(e))
        with session.lock:
            task = self.store.undo_last(session.queue, session.annotator)
            if task is None:
                if session.task is None:
                    self._hand_out(session)
                return self._view(session, "Nothing to undo: you have no labels in this queue.")
            # The item shown until now stays claimed by this annotator: next_task hands it back next.
            session.task, session.shown_at = task, time.time()
            return self._view(session, f"Undone: your label for item {task.item.position + 1} is taken back; "
                                       "label it again.")

    def refresh(self, session_id: str, queue: str | None, annotator: str | None) -> PageView:
        """The page as it stands (progress changes while others label), without handing out work."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:  # never hands out work: a half-typed name must not claim an item
            return self._blank(queue, annotator, "Type your name and press Start to begin.")
        return self._view(session, "")

    def close(self, session_id: str) -> None:
        """The tab was closed: give its unlabeled item back, unless another tab of the same annotator shows it."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            self._release(session)

    # -- internals ---------------------------------------------------------------------------
    def _session(self, session_id: str, queue: str | None, annotator: str | None) -> tuple[Session, bool]:
        """This session for (queue, annotator), and whether it was (re)started by this call."""
        annotator = check_annotator(annotator)
        queue_name = self.store.queue(queue or self.default_queue).name
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.queue == queue_name and session.annotator == annotator:
                return session, False
            new = Session(queue=queue_name, annotator=annotator)
            self._sessions[session_id] = new
        if session is not None:
            self._release(session)  # the tab switched queue or name: free what it held
        return new, True

    def _release(self, gone: Session) -> None:
        """Give back the item a finished session showed, unless another tab of the same annotator shows it
        (a reloaded page: the new tab may have been handed the same claim before the old one closed)."""
        with self._lock:
            task = gone.task
            if task is None or any(s.task is not None and s.task.item.id == task.item.id
                                   and s.annotator == gone.annotator for s in self._sessions.values()):
                return
        self.store.release(task)

    def _hand_out(self, session: Session) -> None:
        session.task = self.store.next_task(session.queue, session.annotator)
        session.shown_at = time.time()

    def _counts(self, queue: Queue, annotator: str) -> tuple[str, dict]:
        p = self.store.progress(queue)
        mine = p.per_annotator.get(annotator, 0)
        rate = self.store.rate_per_minute(queue, annotator)
        text = f"**{p.done} / {p.items}** items done · you: **{mine}** labeled"
        text += f" · **{rate:.1f}** items/min" if rate is not None else " · items/min after your second label"
        if p.skipped:
            text += f" · {p.skipped} skipped"
        return text, {"items": p.items, "done": p.done, "labels": p.labels, "mine": mine,
                      "rate_per_minute": rate}

    def _view(self, session: Session, status: str, *, saved: bool = False) -> PageView:
        queue = self.store.queue(session.queue)
        progress, counts = self._counts(queue, session.annotator)
        task = session.task
        if task is None:
            return PageView(queue=queue.name, mode=queue.mode, annotator=session.annotator, progress=progress,
                            guidelines=queue.guidelines, finished=True, saved=saved, counts=counts,
                            status=(status + " " if status else "") + "Nothing left for you in this queue: every "
                            "item has its labels or is being labeled by someone else. Thank you!")
        return PageView(queue=queue.name, mode=queue.mode, annotator=session.annotator, status=status,
                        progress=progress, guidelines=queue.guidelines, prompt=task.item.prompt,
                        answers=tuple(c.text for c in task.shown_candidates()), item_id=task.item.id,
                        position=task.item.position, shown=task.shown, saved=saved, counts=counts)

    def _blank(self, queue: str | None, annotator: str | None, status: str) -> PageView:
        try:
            q = self.store.queue(queue or self.default_queue)
        except LabelStoreError:
            q = self.store.queue(self.default_queue)
        return PageView(queue=q.name, mode=q.mode, annotator=(annotator or "").strip(), status=status,
                        progress="", guidelines=q.guidelines)


def _verdict_words(verdict: str, order: list[int] | None) -> str:
    if verdict == "rank":
        return "ranking " + " > ".join(str(d) for d in order or [])
    return {"left": "left better", "right": "right better", "tie": "tie", "both_bad": "both bad",
            "good": "good", "bad": "bad", "skip": "skipped"}.get(verdict, verdict)
