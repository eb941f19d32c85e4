"""Honest pages for the workflows that arrive with later releases.

Each says what the workflow will do and what the engine can already do from the command line;
none has controls that would do nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QFrame, QGroupBox, QLabel, QVBoxLayout, QWidget


@dataclass(frozen=True)
class UpcomingWorkflow:
    key: str
    title: str
    summary: str
    steps: tuple[str, ...]


# Every sidebar workflow has its page now; a workflow announced for a later release goes here.
WORKFLOWS: dict[str, UpcomingWorkflow] = {}

CLI_TODAY = (
    "studio-engine run spec.yaml        # run a job of one of the kinds above\n"
    "studio-engine schema pretrain      # every parameter, as JSON schema\n"
    "studio-engine list                 # runs in the workspace\n"
    "studio-engine attach RUN           # follow a run's events\n"
    "studio-engine cancel RUN | resume RUN"
)


class UpcomingPage(QWidget):
    """What a workflow will do, and that it arrives with a later release."""

    def __init__(self, workflow: UpcomingWorkflow, kinds: list[str] | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.workflow = workflow
        title = QLabel(workflow.title)
        title.setObjectName("pageTitle")
        badge = QLabel("Arrives with a later release")
        badge.setObjectName("badge")
        summary = QLabel(workflow.summary)
        summary.setWordWrap(True)
        summary.setMaximumWidth(760)
        plan = QGroupBox("What this workflow will do")
        plan_layout = QVBoxLayout(plan)
        plan_layout.setSpacing(6)
        for i, step in enumerate(workflow.steps, 1):
            label = QLabel(f"{i}.  {step}")
            label.setWordWrap(True)
            plan_layout.addWidget(label)
        today = QGroupBox("Available today")
        today_layout = QVBoxLayout(today)
        kinds_text = ", ".join(kinds or ["pretrain"])
        intro = QLabel(f"The engine runs these job kinds now: <b>{kinds_text}</b>. The Data, Tokenizer, "
                       "Pretrain and Fine-tune pages build and launch them; the command line does the same:")
        intro.setWordWrap(True)
        cli = QLabel(CLI_TODAY)
        cli.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        cli.setTextInteractionFlags(Qt.TextSelectableByMouse)
        today_layout.addWidget(intro)
        today_layout.addWidget(cli)
        for box in (plan, today):
            box.setMaximumWidth(760)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(32, 24, 32, 24)
        layout.setSpacing(14)
        layout.addWidget(title)
        layout.addWidget(badge, 0, Qt.AlignLeft)
        layout.addWidget(summary)
        layout.addSpacing(4)
        layout.addWidget(plan)
        layout.addWidget(today)
        layout.addStretch(1)
        line = QFrame()
        line.setFrameShape(QFrame.NoFrame)
        layout.addWidget(line)
