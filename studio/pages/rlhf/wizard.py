"""Wizards built from the layout a spec declares in its schema: the reward, PPO, DPO and GRPO jobs,
and any kind an engine adds whose spec declares one.

A spec model declares `json_schema_extra={"wizard": {"title", "subtitle", "steps": [{"name",
"fields", "intro"}]}}`; its wizard shows those steps (fields a step does not name land in the last
one, so a field added to a spec appears without touching the studio), then Where to run and Review.
Defaults come from the schema, required fields start blank. Launching emits `launched(run_id)`; the
page opens the run monitor.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QWidget

from studio.models.engine_schema import WizardLayout, own_schema
from studio.widgets.registry_picker import registry_button
from studio.widgets.spec_wizard import SpecWizard

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker

COMMON_INTROS = {
    "Where to run": "The engine and the devices that run the job.",
    "Review": "The spec that will run, and the same run from a terminal.",
}


def wizard_kinds(tracker: Tracker | None = None) -> list[str]:
    """The kinds whose spec (in the default engine's schema) declares a wizard."""
    schema = tracker.schemas.schema(tracker.default_engine) if tracker is not None else own_schema()
    return [kind for kind in schema.kinds if schema.wizard(kind) is not None]


class SchemaWizard(SpecWizard):
    """The wizard of `kind`, its steps, titles and intros from the layout its spec declares."""

    LAUNCH_LABEL = "Start"

    def __init__(self, kind: str, store: Any = None, tracker: Tracker | None = None,
                 workspace: Path | str | None = None, parent: QWidget | None = None):
        self.KIND = kind
        self.engine_given = None
        schema = tracker.schemas.schema(tracker.default_engine) if tracker is not None else own_schema()
        self._use_layout(schema.wizard(kind))
        super().__init__(store, tracker, workspace, parent)

    def _use_layout(self, layout: WizardLayout | None) -> None:
        if layout is None or not layout.steps:
            raise ValueError(f"the spec of kind '{self.KIND}' declares no wizard layout")
        self.layout_steps = layout.steps
        self.STEPS = tuple(step.name for step in layout.steps) + (self.WHERE_STEP, "Review")
        self.STEP_INTROS = {**{step.name: step.intro for step in layout.steps}, **COMMON_INTROS}
        self.TITLE, self.SUBTITLE = layout.title, layout.subtitle
        self.CORPUS_STEP = layout.steps[0].name

    def _step_fields(self) -> dict[str, list[str]]:
        properties = self.schema.get("properties", {})
        named = {f for step in self.layout_steps for f in step.fields} | {"kind", "resources"}
        fields = {step.name: [f for f in step.fields if f in properties] for step in self.layout_steps}
        fields[self.layout_steps[-1].name] += [f for f in properties if f not in named]
        fields[self.WHERE_STEP] = ["resources"]
        return fields

    def _build_steps(self) -> None:
        for step in self.layout_steps:
            self._build_form_step(step.name)
            if "data" in step.fields and "data.sources" in self.forms[step.name].fields:
                # Preference files often come from LLaMA-Factory: its registry's entries are sources.
                editor = self.forms[step.name].editor("data.sources")
                self.registry_button = registry_button(self, lambda source, e=editor: e.add_item(source),
                                                       "LLaMA-Factory…")
                editor.buttons.insertWidget(2, self.registry_button)
        self._build_where_step()

    def update_preview(self) -> None:
        """No corpus preview: the pipeline page shows what the inputs are."""

    def show_run(self, run_id: str) -> None:
        """The page opens the run monitor on `launched`; the wizard resets for the next run."""
        self.reset()
