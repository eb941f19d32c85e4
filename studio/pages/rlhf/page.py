"""The Reward & PPO page: the RLHF chain as a pipeline, each stage's runs linked, and its next step.

SFT model → labels → reward model → policy (PPO, or DPO/GRPO). Each stage is a card with what it
holds (runs with their headline figure, queues with their labels) and its action; the first stage
with nothing completed is highlighted as the next step. The actions open the Fine-tune and Label
pages, or this page's wizards for the reward, PPO, DPO and GRPO jobs, prefilled from the chain.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFrame, QHBoxLayout, QLabel, QListWidget, QListWidgetItem, QPushButton, QStackedWidget, QVBoxLayout,
    QWidget,
)

from engine.kinds import kinds_at
from engine.labeling.store import LabelStore
from studio.models.engine_schema import kind_title
from studio.models.rlhf_pipeline import QUEUE_PREFIX, Pipeline, build_pipeline
from studio.pages.rlhf.wizard import SchemaWizard

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

STAGE_TITLES = {"sft": "1  Fine-tuned model", "labels": "2  Preferences", "reward": "3  Reward model",
                "policy": "4  Policy"}
STAGE_HELP = {
    "sft": "The model to align: a fine-tuning run. Its answers are what people compare.",
    "labels": "Candidate answers from the model, labeled better/worse on the Label page (or by a task's checker).",
    "reward": "A model that scores answers as the labels do; its held-out pairwise accuracy says how well.",
    "policy": "The model improved against the reward model (PPO, GRPO) or on the labels directly (DPO).",
}


class StageCard(QFrame):
    """One stage: title, help, its runs (double-click opens one), and its action buttons."""

    open_run = Signal(str)

    def __init__(self, key: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.key = key
        self.setObjectName("methodCard")
        self.setProperty("selected", False)
        self.title = QLabel(f"<b>{STAGE_TITLES[key]}</b>")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setObjectName("stat")
        help_label = QLabel(STAGE_HELP[key])
        help_label.setObjectName("help")
        help_label.setWordWrap(True)
        self.runs = QListWidget()
        self.runs.setMinimumHeight(90)
        self.runs.setWordWrap(True)
        self.runs.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.runs.itemDoubleClicked.connect(lambda item: self._open(item))
        self.buttons = QVBoxLayout()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 12)
        layout.addWidget(self.title)
        layout.addWidget(help_label)
        layout.addWidget(self.status)
        layout.addWidget(self.runs, 1)
        layout.addStretch(0)
        layout.addLayout(self.buttons)

    def add_button(self, text: str, slot, primary: bool = False) -> QPushButton:
        button = QPushButton(text)
        button.setMinimumWidth(0)
        if primary:
            button.setObjectName("primary")
        button.clicked.connect(slot)
        self.buttons.addWidget(button)
        return button

    def set_next(self, is_next: bool) -> None:
        self.setProperty("selected", is_next)
        self.style().unpolish(self)
        self.style().polish(self)

    def set_items(self, rows: list[tuple[str, str | None]]) -> None:
        """(text, run id or None) rows; a row with a run id opens it on double-click."""
        self.runs.clear()
        if not rows:
            placeholder = QListWidgetItem("Nothing yet")
            placeholder.setFlags(Qt.NoItemFlags)
            self.runs.addItem(placeholder)
        for text, run_id in rows:
            item = QListWidgetItem(text)
            item.setData(Qt.UserRole, run_id)
            if run_id:
                item.setToolTip(f"{run_id} — double-click to open its monitor")
            self.runs.addItem(item)

    def _open(self, item: QListWidgetItem) -> None:
        run_id = item.data(Qt.UserRole)
        if run_id:
            self.open_run.emit(run_id)


class RLHFPage(QWidget):
    """Signals: `open_run(run_id)` (the monitor), `go_to_page(key)` (Fine-tune, Label)."""

    open_run = Signal(str)
    go_to_page = Signal(str)

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store, self.tracker = store, tracker
        self.workspace = Path(workspace or ".")
        self.labels = LabelStore(self.workspace / "store.db")
        self.pipeline: Pipeline | None = None
        self._queue_sources: dict = {}  # queue name -> (items, where its answers come from)
        self.wizards: dict[str, Any] = {}
        self.stack = QStackedWidget()
        self.stack.addWidget(self._build_pipeline_view())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)
        if tracker is not None:
            tracker.run_state_changed.connect(lambda *_: self.refresh())
            tracker.run_added.connect(lambda *_: self.refresh())
        self.refresh()

    # ------------------------------------------------------------------------------ layout
    def _build_pipeline_view(self) -> QWidget:
        view = QWidget()
        title = QLabel("Reward & PPO")
        title.setObjectName("pageTitle")
        subtitle = QLabel("Align a fine-tuned model with preferences: labels → reward model → PPO (or DPO, GRPO). "
                          "Each stage shows its runs; the highlighted one is the next step.")
        subtitle.setObjectName("subtitle")
        subtitle.setWordWrap(True)
        self.sft_box = QComboBox()
        self.sft_box.setMinimumWidth(320)
        self.sft_box.currentIndexChanged.connect(lambda _: self.refresh(keep_choice=True))
        refresh = QPushButton("Refresh")
        refresh.clicked.connect(lambda: self.refresh(keep_choice=True))
        bar = QHBoxLayout()
        bar.addWidget(QLabel("Fine-tuned model"))
        bar.addWidget(self.sft_box)
        bar.addWidget(refresh)
        bar.addStretch(1)
        self.cards = {key: StageCard(key) for key in STAGE_TITLES}
        strip = QHBoxLayout()
        strip.setSpacing(6)
        for index, key in enumerate(STAGE_TITLES):
            if index:
                arrow = QLabel("→")
                arrow.setObjectName("stat")
                strip.addWidget(arrow)
            self.cards[key].open_run.connect(self.open_run)
            strip.addWidget(self.cards[key], 1)
        self.cards["sft"].add_button("Fine-tune…", lambda: self.go_to_page.emit("finetune"))
        self.cards["labels"].add_button("Generate && label…", lambda: self.go_to_page.emit("label"))
        self.reward_button = self.cards["reward"].add_button("Train…", lambda: self.start("reward"))
        self.policy_buttons = {kind.name: self.cards["policy"].add_button(
            f"{kind.title}…", lambda _=False, name=kind.name: self.start(name)) for kind in kinds_at("policy")}
        self.ppo_button = self.policy_buttons["ppo"]
        self.next_label = QLabel("")
        self.next_label.setWordWrap(True)
        self.next_label.setTextFormat(Qt.TextFormat.PlainText)
        self.next_label.setObjectName("subtitle")
        layout = QVBoxLayout(view)
        layout.setContentsMargins(24, 18, 24, 16)
        layout.addWidget(title)
        layout.addWidget(subtitle)
        layout.addLayout(bar)
        layout.addLayout(strip, 1)  # the stages take the height a large screen has: their lists grow
        layout.addWidget(self.next_label)
        return view

    # ------------------------------------------------------------------------------ the chain
    def refresh(self, keep_choice: bool = False) -> None:
        if self.store is None:
            return
        chosen = self.sft_box.currentData() if keep_choice else None
        finetunes = self.store.runs(kind="finetune")
        self.sft_box.blockSignals(True)
        self.sft_box.clear()
        for run in finetunes:
            self.sft_box.addItem(f"{run.name or run.run_id}  ({run.state})  ·  {run.run_id}", run.run_id)
        if chosen:
            self.sft_box.setCurrentIndex(max(0, self.sft_box.findData(chosen)))
        self.sft_box.blockSignals(False)
        self.pipeline = build_pipeline(self.workspace, self.store, self.labels, self.sft_box.currentData(),
                                       self._queue_sources)
        self._show(self.pipeline)

    def _show(self, pipeline: Pipeline) -> None:
        sft = pipeline.sft
        self.cards["sft"].status.setText(sft.headline or sft.state if sft else "No fine-tuning run yet")
        self.cards["sft"].set_items([(f"{sft.name}  ·  {sft.state}", sft.run_id)] if sft else [])
        labeled = [q for q in pipeline.queues if q.items]
        self.cards["labels"].status.setText(f"{pipeline.labels:,} labels" if labeled else "No labels yet")
        n = pipeline.other_queues
        others = [(f"{n} other queue{'s hold' if n != 1 else ' holds'} other models' answers", None)] if n else []
        self.cards["labels"].set_items([(f"{q.name}: {q.labels:,} labels of this model's answers, {q.done:,}/"
                                         f"{q.items:,} items done", None) for q in labeled] + others)
        best = pipeline.best_reward_run()
        self.cards["reward"].status.setText(best.headline or best.state if best else "No reward model yet")
        self.cards["reward"].set_items([(_row(r), r.run_id) for r in pipeline.reward_runs])
        policies = pipeline.policy_runs
        latest = policies[0] if policies else None
        self.cards["policy"].status.setText(f"{kind_title(latest.kind)}: {latest.headline or latest.state}"
                                            if latest else "No policy run yet")
        self.cards["policy"].set_items([(f"{kind_title(r.kind)}  " + _row(r), r.run_id) for r in policies])
        step = pipeline.next_step()
        for key, card in self.cards.items():
            card.set_next(key == step)
        self.reward_button.setEnabled(sft is not None)
        self.ppo_button.setEnabled(sft is not None and best is not None)
        self.next_label.setText(_next_sentence(step, pipeline))

    # ------------------------------------------------------------------------------ wizards
    def wizard(self, kind: str):
        if kind not in self.wizards:
            wizard = SchemaWizard(kind, self.store, self.tracker, self.workspace)
            wizard.launched.connect(self._launched)
            back = QPushButton("← Pipeline")
            back.clicked.connect(lambda: self.stack.setCurrentIndex(0))
            holder = QWidget()
            layout = QVBoxLayout(holder)
            layout.setContentsMargins(0, 8, 0, 0)
            row = QHBoxLayout()
            row.setContentsMargins(16, 0, 16, 0)
            row.addWidget(back)
            row.addStretch(1)
            layout.addLayout(row)
            layout.addWidget(wizard, 1)
            self.stack.addWidget(holder)
            self.wizards[kind] = (wizard, holder)
        return self.wizards[kind][0]

    def start(self, kind: str) -> Any:
        """Open the wizard of `kind`, prefilled from the chain (model, preferences, reward model)."""
        wizard = self.wizard(kind)
        wizard.reset()
        wizard.set_spec_data(prefill(kind, self.pipeline))
        self.stack.setCurrentWidget(self.wizards[kind][1])
        return wizard

    def _launched(self, run_id: str) -> None:
        self.stack.setCurrentIndex(0)
        self.refresh(keep_choice=True)
        self.open_run.emit(run_id)


def prefill(kind: str, pipeline: Pipeline | None) -> dict:
    """Spec values a stage's wizard starts from: the SFT run, the labeled queue, the reward run."""
    if pipeline is None or pipeline.sft is None:
        return {}
    sft = pipeline.sft.run_id
    queue = pipeline.queue_for_reward()
    reward = pipeline.best_reward_run()
    sources = [f"{QUEUE_PREFIX}{queue.name}"] if queue else []
    if kind == "reward":
        return {"name": "reward", "model": {"path": sft}, "data": {"sources": sources}}
    if kind in ("dpo", "kto"):
        return {"name": kind, "model": {"path": sft}, "data": {"sources": sources}}
    if kind == "grpo":
        return {"name": "grpo", "model": {"path": sft}}
    if kind == "ppo":
        return {"name": "ppo", "policy": {"path": sft}, "reward_model": reward.run_id if reward else ""}
    return {}


def _row(run) -> str:
    return f"{run.name}  ·  {run.state}" + (f"  ·  {run.headline}" if run.headline else "")


def _next_sentence(step: str, pipeline: Pipeline) -> str:
    queue = pipeline.queue_for_reward()
    reward = pipeline.best_reward_run()
    sft = pipeline.sft.name if pipeline.sft else "it"
    return {
        "sft": "Next: fine-tune a model on the Fine-tune page; its run anchors this chain.",
        "labels": f"Next: generate candidate answers from {sft} and label them on the Label page.",
        "reward": (f"Next: train a reward model on the {queue.labels:,} labels of queue '{queue.name}' "
                   f"(answers of {sft}), or skip it with DPO or KTO on them.") if queue else
                  "Next: train a reward model on the labels, or skip it with DPO or KTO.",
        "policy": (f"Next: run PPO from {sft} against the reward model '{reward.name}' (or GRPO, or DPO or "
                   "KTO on the labels).") if reward else
                  "Next: run PPO against the reward model (or GRPO, or DPO or KTO on the labels).",
        "done": "Every stage has a completed run. Compare the policy with the SFT model in the run monitor, or "
                "label the policy's answers for another round.",
    }[step]
