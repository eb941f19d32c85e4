"""Export… and Merge… from a run's Artifacts tab: the wizard of `kind: export` or `kind: merge` in a
dialog, filled from the run, launched through the tracker like every wizard (the spec is written into
the workspace, checked by the engine, then started). When the run starts the dialog closes and
`launched(run_id)` says which run to show.

The export wizard's Files step estimates each file's size from the model's weight files on disk (their
bytes and the dtype its config.json states), before anything runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QLabel, QVBoxLayout, QWidget

from engine.specs.export import BYTES_PER_WEIGHT
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_wizard import SpecWizard

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
REVIEW_INTRO = "The spec that will run, and the same run from a terminal."


def weight_count(folder: Path) -> int | None:
    """How many weights the model in `folder` (a model, a run, or a run's output) holds, from the size
    of its weight files and the dtype its config.json states; None when that is not on this computer."""
    for candidate in (folder, folder / "output" / "merged", folder / "output" / "model", folder / "output" / "policy"):
        config = candidate / "config.json"
        files = [p for p in candidate.glob("*") if p.suffix in WEIGHT_SUFFIXES] if candidate.is_dir() else []
        if config.is_file() and files:
            values = json.loads(config.read_text(encoding="utf-8"))
            width = DTYPE_BYTES.get(values.get("dtype") or values.get("torch_dtype") or "float32", 4)
            return sum(p.stat().st_size for p in files) // width
    return None


class ShipWizard(SpecWizard):
    """The wizard of one of the shipping kinds (export or merge); `for_kind` makes one."""

    LAUNCH_LABEL = "Start"
    run_engine: str | None = None  # the engine of the run the dialog was opened from: the job runs there too

    @classmethod
    def for_kind(cls, kind: str, **kwargs) -> ShipWizard:
        return {"export": ExportWizard, "merge": MergeWizard}[kind](**kwargs)

    def engine_name(self) -> str:
        return self.run_engine or super().engine_name()

    def show_run(self, run_id: str) -> None:
        self.status_label.setText(f"Started {run_id}.")

    def _source(self) -> Path | None:
        return None

    def update_preview(self) -> None:
        """The size estimate (from the source model's weight files on this computer)."""
        source = self._source()
        count = weight_count(source) if source is not None else None
        self.preview.setText("" if count is None else self._estimate(count))

    def _estimate(self, count: int) -> str:
        return f"The model holds about {count / 1e6:,.1f} M weights."

    def _build_step_with_preview(self, name: str) -> None:
        """A form step with the size estimate under its form."""
        page, layout = self._step_page(name)
        layout.addWidget(self._form(name))
        self.preview = QLabel("")
        self.preview.setObjectName("help")
        self.preview.setWordWrap(True)
        layout.addWidget(self.preview)
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))


class ExportWizard(ShipWizard):
    KIND = "export"
    STEPS = ("Model", "Files", "Verification", "Review")
    CORPUS_STEP = "Model"
    STEP_FIELDS = {"Model": ["name", "model", "chat_template"], "Files": ["quantizations", "ollama"],
                   "Verification": ["verify"]}
    STEP_INTROS = {
        "Model": "The model to ship. A run's adapter is folded into its base model first; the files carry the "
                 "tokenizer and the chat template.",
        "Files": "One GGUF file per precision, for llama.cpp, LM Studio and Ollama, and an Ollama Modelfile "
                 "(template, stop tokens, parameters) beside them.",
        "Verification": "Each file is loaded back by transformers and compared with the model: the same greedy "
                        "answers and logits for f16, perplexity within 1% for q8_0.",
        "Review": REVIEW_INTRO,
    }
    TITLE = "Export to GGUF"
    SUBTITLE = "Files for llama.cpp, LM Studio and Ollama, verified against the model they came from."
    LAUNCH_LABEL = "Export"

    def _build_steps(self) -> None:
        self._build_form_step("Model")
        self._build_step_with_preview("Files")
        self._build_form_step("Verification")

    def _source(self) -> Path | None:
        path = (self.forms["Model"].values().get("model") or {}).get("path") or ""
        if not path:
            return None
        folder = Path(path).expanduser()
        return folder if folder.is_absolute() else self.workspace / "runs" / path

    def _estimate(self, count: int) -> str:
        sizes = ", ".join(f"{q} ≈ {count * BYTES_PER_WEIGHT[q] / 2**20:,.0f} MiB" for q in BYTES_PER_WEIGHT)
        return f"About {count / 1e6:,.1f} M weights: {sizes}."


class MergeWizard(ShipWizard):
    KIND = "merge"
    STEPS = ("Merge", "Review")
    CORPUS_STEP = "Merge"
    STEP_FIELDS = {"Merge": ["name", "method", "checkpoints", "models", "base_model", "t", "density", "dtype"]}
    STEP_INTROS = {
        "Merge": "fold: a run's adapter into its base. average: the last checkpoints of a run. linear, slerp, "
                 "ties: models of one architecture (models as a list, e.g. [{\"path\": \"run-a\"}, "
                 "{\"path\": \"run-b\", \"weight\": 2}]).",
        "Review": REVIEW_INTRO,
    }
    TITLE = "Merge models"
    SUBTITLE = "One model of several: an adapter folded in, checkpoints averaged, or models merged."
    LAUNCH_LABEL = "Merge"

    def _build_steps(self) -> None:
        self._build_step_with_preview("Merge")


class ShipDialog(QDialog):
    """Export… or Merge… of a run: its wizard, filled with `values`; closes when the run starts."""

    launched = Signal(str)

    def __init__(self, kind: str, values: dict, store: Any = None, tracker: Tracker | None = None,
                 workspace: Path | str | None = None, engine: str | None = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.wizard = ShipWizard.for_kind(kind, store=store, tracker=tracker, workspace=workspace)
        self.wizard.run_engine = engine
        self.setWindowTitle(self.wizard.TITLE)
        self.wizard.set_spec_data(values)
        self.wizard.update_preview()
        self.wizard.launched.connect(self._started)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.wizard)
        self.resize(980, 680)

    def _started(self, run_id: str) -> None:
        self.launched.emit(run_id)
        self.accept()
