"""The wizards of the reward, PPO, DPO and GRPO jobs: forms generated from each kind's spec schema.

One class, configured per kind: its steps group the spec's top-level fields (fields a step does not
name land in the last form step, so a field added to a spec appears without touching this file),
then Where to run and Review. Launching emits `launched(run_id)`; the page opens the run monitor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QWidget

from engine.specs import SPEC_MODELS
from studio.widgets.spec_wizard import SpecWizard

# (step, top-level fields) per kind; "Where to run" (resources) and "Review" follow.
STEP_GROUPS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "reward": (("Model & preferences", ("name", "model", "data")), ("Training", ("method", "train", "seed"))),
    "ppo": (("Models", ("name", "policy", "reward_model", "value_model")), ("Prompts", ("prompts", "sampling")),
            ("PPO", ("ppo", "method", "train", "evaluation", "seed"))),
    "dpo": (("Model & preferences", ("name", "model", "data", "beta", "loss_type")),
            ("Training", ("method", "train", "evaluation", "seed"))),
    "grpo": (("Model & reward", ("name", "model", "reward", "group_size", "beta")), ("Prompts", ("prompts", "sampling")),
             ("Training", ("method", "train", "evaluation", "seed"))),
}
TITLES = {
    "reward": ("Train a reward model", "A one-score head on your model learns which answer people preferred "
                                       "(Bradley–Terry); its pairwise accuracy on held-out pairs shows live."),
    "ppo": ("Improve the policy with PPO", "Answers scored by the reward model, a KL leash to the reference model, "
                                           "GAE and the clipped objective; reward, KL and samples live."),
    "dpo": ("Direct preference optimisation", "Learn from the labeled pairs directly, no reward model; β sets how "
                                              "far the policy may move from the reference."),
    "grpo": ("Group-relative policy optimisation", "Several answers per prompt, each scored against its group: by a "
                                                   "reward model or by the task's checker."),
}
INTROS = {
    "Model & preferences": "The model to start from (usually your fine-tuned model) and the preference pairs: "
                           "queue:NAME for a labeling queue of this workspace, or preference files.",
    "Models": "The policy to improve, the reward model that scores its answers, and where the value model starts.",
    "Model & reward": "The policy to improve, and what scores its answers.",
    "Prompts": "The prompts the policy answers while it learns, and how its answers are sampled.",
    "PPO": "The PPO objective and the training loop. The defaults follow the usual RLHF settings.",
    "Training": "How long and how fast it trains, with or without LoRA, and what is measured on the way.",
    "Where to run": "The engine and the devices that run the job.",
    "Review": "The spec that will run, and the same run from a terminal.",
}
# Required fields filled with a placeholder to read a kind's defaults, then blanked for the user.
PLACEHOLDERS = {
    "reward": {"model": {"path": "?"}, "data": {"sources": ["?"]}},
    "dpo": {"model": {"path": "?"}, "data": {"sources": ["?"]}},
    "grpo": {"model": {"path": "?"}},
    "ppo": {"policy": {"path": "?"}, "reward_model": "?"},
}


def wizard_class(kind: str) -> type[SpecWizard]:
    """A SpecWizard subclass for `kind` (built once per kind)."""
    if kind in _CLASSES:
        return _CLASSES[kind]
    groups = STEP_GROUPS[kind]
    steps = tuple(name for name, _ in groups) + ("Where to run", "Review")
    title, subtitle = TITLES[kind]
    attributes = {"KIND": kind, "STEPS": steps, "STEP_INTROS": {s: INTROS[s] for s in steps}, "TITLE": title,
                  "SUBTITLE": subtitle, "LAUNCH_LABEL": "Start", "CORPUS_STEP": groups[0][0]}
    cls = type(f"{kind.capitalize()}Wizard", (RLHFWizard,), attributes)
    _CLASSES[kind] = cls
    return cls


_CLASSES: dict[str, type[SpecWizard]] = {}


class RLHFWizard(SpecWizard):
    """Form steps from STEP_GROUPS[KIND], Where to run, Review. `show_run` hands the run to the page."""

    def __init__(self, store: Any = None, tracker: Any = None, workspace: Path | str | None = None,
                 parent: QWidget | None = None):
        self.engine_given = None
        super().__init__(store, tracker, workspace, parent)

    def _step_fields(self) -> dict[str, list[str]]:
        groups = STEP_GROUPS[self.KIND]
        named = {f for _, fields in groups for f in fields} | {"kind", "resources"}
        rest = [f for f in self.schema.get("properties", {}) if f not in named]
        fields = {step: [f for f in fields if f in self.schema.get("properties", {})] for step, fields in groups}
        fields[groups[-1][0]] += rest
        fields["Where to run"] = ["resources"]
        return fields

    def _build_steps(self) -> None:
        for step, _ in STEP_GROUPS[self.KIND]:
            self._build_form_step(step)
        self._build_where_step()

    def default_values(self) -> dict:
        placeholders = PLACEHOLDERS[self.KIND]
        values = SPEC_MODELS[self.KIND](**placeholders).model_dump(mode="json")
        for key, value in placeholders.items():
            if isinstance(value, dict):
                for inner in value:
                    values[key][inner] = [] if isinstance(value[inner], list) else ""
            else:
                values[key] = ""
        return values

    def update_preview(self) -> None:
        """No corpus preview: the pipeline page shows what the inputs are."""

    def show_run(self, run_id: str) -> None:
        """The page opens the run monitor on `launched`; the wizard resets for the next run."""
        self.reset()
