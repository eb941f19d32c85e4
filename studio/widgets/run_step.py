"""The "Where to run" step of a SpecWizard (the engine, the spec's `resources`, and how the run will
start, also shown on Review), and the engine that answers the wizard's previews."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QVBoxLayout

from studio.widgets.launch_plan import LaunchPlanBox
from studio.widgets.scrolled import scrolled


class RunStep:
    """Mixed into SpecWizard: the step `WHERE_STEP` and `engine()`. It uses the wizard's `_step_page`,
    `_form`, `steps`, `forms`, `tracker` and `workspace`."""

    engine_given = None  # an engine for previews (tests give a stand-in); see `engine()`
    _own_engine = None  # the local engine made here when neither a given one nor the tracker's is at hand

    def _build_where_step(self) -> None:
        """The step of the engine and the resources, with how the run will start."""
        page, layout = self._step_page(self.WHERE_STEP)
        engine_box = QGroupBox("Engine")
        self.engine_combo = QComboBox()
        self.engine_combo.setToolTip("SSH engines are added in File ▸ Engines… (Ctrl+Shift+E).")
        self.refresh_engines()
        # The forms follow the chosen engine's own schema.
        self.engine_combo.currentIndexChanged.connect(lambda _index: self._engine_chosen())
        engine_note = QLabel("This computer's engine, or an SSH engine (File ▸ Engines… adds one). Local files "
                             "and folders the spec names are copied to an SSH engine's workspace first, once per "
                             "content. A run keeps going when the studio is closed or the connection drops.")
        engine_note.setObjectName("help")
        engine_note.setWordWrap(True)
        engine_layout = QVBoxLayout(engine_box)
        engine_layout.addWidget(self.engine_combo)
        engine_layout.addWidget(engine_note)
        layout.addWidget(engine_box)
        layout.addWidget(self._form(self.WHERE_STEP))
        self.launch_plan_box = LaunchPlanBox()
        layout.addWidget(self.launch_plan_box)
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    def refresh_engines(self) -> None:
        """List the tracker's engines: the local one first, then the SSH ones (keeps the choice)."""
        combo = getattr(self, "engine_combo", None)
        if combo is None:
            return
        chosen = combo.currentData()
        combo.blockSignals(True)
        combo.clear()
        combo.addItem("Local engine (this computer)", self._default_engine_name())
        for name, engine in (self.tracker.engines if self.tracker is not None else {}).items():
            if engine.is_remote:
                how = "Slurm" if getattr(engine, "slurm", None) is not None else "SSH"
                combo.addItem(f"{name}  ({how}: {engine.target.host})", name)
        index = combo.findData(chosen)
        combo.setCurrentIndex(max(index, 0))
        combo.blockSignals(False)
        if chosen is not None and index < 0:  # the engine chosen is gone: the forms follow the one shown now
            self._engine_chosen()

    def selected_engine(self) -> str | None:
        """The name of the engine chosen for the run (None: the tracker's default)."""
        name = self.engine_name()
        return None if name == self._default_engine_name() else name

    def engine_name(self) -> str:
        """The name of the engine chosen for the run (the tracker's default one included)."""
        combo = getattr(self, "engine_combo", None)
        return (combo.currentData() if combo is not None else None) or self._default_engine_name()

    def _default_engine_name(self) -> str:
        return self.tracker.default_engine if self.tracker is not None else "local"

    def engine(self) -> Any:
        """The engine that answers previews: the one given (`engine_given`), the tracker's default,
        or a local one made here."""
        if self.engine_given is not None:
            return self.engine_given
        if self.tracker is not None and self.tracker.engines:
            return self.tracker.engines[self.tracker.default_engine]
        if self._own_engine is None or self._own_engine.workspace != self.workspace:
            from studio.client.engine import LocalEngine

            self._own_engine = LocalEngine(workspace=self.workspace, parent=self)
        return self._own_engine

    def launch_config(self, resources: dict) -> dict | None:
        """The configuration the engine derives from `resources` for this kind (shown with the
        launch plan); None when it derives none."""
        return None

    def update_launch_plan(self) -> None:
        """Say how the run will start (Where to run and Review), from the resources chosen."""
        if self.WHERE_STEP not in self.forms:
            return
        resources = self.forms[self.WHERE_STEP].values().get("resources") or {}
        config = self.launch_config(resources)
        engines = self.tracker.engines if self.tracker is not None else {}
        chosen = engines.get(self.engine_name())
        slurm_engine = chosen if getattr(chosen, "slurm", None) is not None else None
        # The command runs where the engine is: an SSH engine's workspace is its own (`~/…` on that host).
        workspace = Path(str(getattr(chosen, "workspace", None) or self.workspace))
        for box in (getattr(self, "launch_plan_box", None), getattr(self, "review_plan_box", None)):
            if box is not None:
                box.set_resources(resources, workspace, config, slurm_engine=slurm_engine)
