"""SpecWizard: the mechanism shared by the studio's spec wizards (pretrain, tokenizer, data, fine-tune).

A wizard is a list of steps beside a stack of step pages, Back/Next/Launch below, and a final
Review step with the spec's YAML and the equivalent CLI command. Its forms are SpecForms generated
from the JSON schema of one spec kind as the engine chosen to run it describes it (`studio-engine
schema` of that engine, see `studio.client.schemas`): choosing another engine, or an engine
answering with another schema, rebuilds them. Field problems come from that schema at once; the
checks across fields are the engine's own (`studio-engine validate`, on Review and before every
launch). Problems are shown at their fields and the steps that have one are marked ⚠. Launch
writes the spec into the workspace and starts it through the run tracker. A subclass names its
kind, steps and intros, builds its own steps, and shows the run it launched (`show_run`).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from engine.specs import SpecError, SpecProblem, parse_spec
from studio.client.engine import LatestCommand
from studio.models.engine_schema import EngineSchema, in_controls, own_schema, problems_from_engine
from studio.widgets.corpus_step import CorpusStep
from studio.widgets.launch_plan import LaunchPlanBox
from studio.widgets.run_step import RunStep
from studio.widgets.scrolled import scrolled
from studio.widgets.spec_form import SpecForm

if TYPE_CHECKING:
    from studio.client.run_tracker import Tracker


PROBLEMS_MARKED = "(marked ⚠)."


def mono(text_edit: QPlainTextEdit) -> None:
    text_edit.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))


def deep_merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def spec_yaml(data: dict) -> str:
    """A spec's values as the YAML file the engine reads."""
    import yaml

    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


class SpecWizard(CorpusStep, RunStep, QWidget):
    """The wizard of one spec kind, then (in a subclass) the view of the run it launched.

    A subclass sets `KIND`, `STEPS` (the last one "Review"), `STEP_INTROS`, `STEP_FIELDS` (or
    overrides `_step_fields`), `TITLE`, `SUBTITLE` and `LAUNCH_LABEL`; builds every step but Review
    in `_build_steps`; and implements `show_run(run_id)` and `show_wizard()`. The other hooks
    (`_build_run_view`, `_connect_forms`, `_entering_step`, `_values_set`, `_workspace_changed`,
    `_tracker_slots`, `_tracker_changed`) do nothing unless overridden; `default_values` gives the
    spec's defaults.

    Public: `launched(run_id)`, `forms` (step name -> SpecForm), `step_list`, `steps`, `stack`,
    `wizard`, the Back/Next/Launch buttons, `yaml_view`, `command_label`, `problems_label`,
    `status_label`, `problems`, `last_spec_path`, and the methods without a leading underscore.

    `_build_where_step` (from RunStep, `run_step.py`) builds the step `WHERE_STEP` (engine, the spec's
    `resources`, and how the run will start, also shown on Review: `launch_plan_box`,
    `review_plan_box`); `engine()` is the engine that answers previews.

    The corpus step (from CorpusStep, `corpus_step.py`) is `CORPUS_STEP`, showing the spec section
    `CORPUS_SECTION` (its `sources` and `text_field`); it offers the cleaned datasets of earlier clean
    runs (`dataset_picker`, `use_dataset(path)`) unless built with `offer_datasets=False`.
    """

    launched = Signal(str)  # run id

    KIND = ""
    STEPS: tuple[str, ...] = ()
    STEP_INTROS: dict[str, str] = {}
    STEP_FIELDS: dict[str, list[str]] = {}
    TITLE = ""
    SUBTITLE = ""
    LAUNCH_LABEL = "Launch"
    CORPUS_STEP = "Corpus"
    CORPUS_SECTION = "data"
    WHERE_STEP = "Where to run"  # built by `_build_where_step`, showing the spec's `resources`

    def __init__(self, store: Any = None, tracker: Tracker | None = None, workspace: Path | str | None = None,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.tracker = tracker
        self.workspace = Path(workspace) if workspace else Path.home() / "atelier"
        self.engine_schema = self.schema_of(self._default_engine_name())
        self.schema = self.engine_schema.kind_schema(self.KIND)
        self.fields = self._step_fields()
        self.forms: dict[str, SpecForm] = {}
        self.last_spec_path: Path | None = None
        self.problems: list = []
        self._launching = None
        self._checking = LatestCommand(self)  # the engine's `validate` of the values shown on Review
        self._checking.succeeded.connect(lambda _answer, key: self._engine_checked(key, []))
        self._checking.failed.connect(lambda _message, key: self._engine_checked(
            key, problems_from_engine(self._checking_stderr.get(key, ""))))
        self._checking_stderr: dict[str, str] = {}
        self._engine_problems: tuple[str, list] = ("", [])  # (the spec YAML the engine checked, its problems)
        self._refusal: tuple[str, str] | None = None  # (settings, why) of a preview the engine could not make

        self.stack = QStackedWidget()  # wizard | the run view
        self.wizard = QWidget()
        self.stack.addWidget(self.wizard)
        self._build_run_view()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.stack)

        title = QLabel(self.TITLE)
        title.setObjectName("pageTitle")
        subtitle = QLabel(self.SUBTITLE)
        subtitle.setObjectName("subtitle")
        subtitle.setWordWrap(True)  # a long one takes two lines on a laptop's screen, not the page's width
        self.step_list = QListWidget()
        self.step_list.setObjectName("steps")
        for i, name in enumerate(self.STEPS, 1):
            self.step_list.addItem(f"{i}.  {name}  ⚠")  # as wide as a step marked with a problem gets
        self.step_list.setFixedWidth(max(170, self.step_list.sizeHintForColumn(0) + 2 * self.step_list.frameWidth() + 8))
        self.step_list.setHorizontalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        for i, name in enumerate(self.STEPS, 1):
            self.step_list.item(i - 1).setText(f"{i}.  {name}")
        self.steps = QStackedWidget()
        self._build_steps()
        self._build_review_step()
        self.step_list.currentRowChanged.connect(self.go_to_step)

        self.back_button = QPushButton("Back")
        self.next_button = QPushButton("Next")
        self.next_button.setObjectName("primary")
        self.launch_button = QPushButton(self.LAUNCH_LABEL)
        self.launch_button.setObjectName("primary")
        self.launch_button.setToolTip("Write the spec into the workspace and start the run on the engine.")
        self.back_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() - 1))
        self.next_button.clicked.connect(lambda: self.go_to_step(self.steps.currentIndex() + 1))
        self.launch_button.clicked.connect(self.launch)
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.status_label.setWordWrap(True)
        nav = QHBoxLayout()
        nav.addWidget(self.status_label, 1)
        nav.addWidget(self.back_button)
        nav.addWidget(self.next_button)
        nav.addWidget(self.launch_button)

        body = QHBoxLayout()
        body.setSpacing(18)
        body.addWidget(self.step_list)
        body.addWidget(self.steps, 1)
        outer = QVBoxLayout(self.wizard)
        outer.setContentsMargins(24, 18, 24, 16)
        outer.setSpacing(10)
        outer.addWidget(title)
        outer.addWidget(subtitle)
        outer.addSpacing(6)
        outer.addLayout(body, 1)
        outer.addLayout(nav)

        self._validate_timer = QTimer(self)
        self._validate_timer.setSingleShot(True)
        self._validate_timer.setInterval(150)
        self._validate_timer.timeout.connect(self.validate)
        self._preview_timer = QTimer(self)
        self._preview_timer.setSingleShot(True)
        self._preview_timer.setInterval(300)
        self._preview_timer.timeout.connect(self.update_preview)
        for form in self.forms.values():
            form.changed.connect(self._validate_timer.start)
        self.forms[self.CORPUS_STEP].changed.connect(self._preview_timer.start)
        self._connect_forms()

        if tracker is not None:
            for signal, slot in SpecWizard._tracker_slots(self, tracker):
                signal.connect(slot)
            tracker.schemas.refresh(self.engine_name())
        self.reset()

    # ------------------------------------------------------------------------------- hooks
    def preview_key(self) -> str | None:
        """The settings the wizard's engine preview depends on, as a comparable string (None: it has
        no preview)."""
        return None

    def preview_refused(self, message: str, key: str | None = None) -> None:
        """The engine could not preview the settings `key` (default: the current ones): Launch waits
        while they are the settings shown (until they change, or a preview of them succeeds), and the
        status line says why."""
        self._refusal = (key or self.preview_key() or "", message.splitlines()[0] if message else "")
        self.validate()

    def preview_accepted(self) -> None:
        self._refusal = None
        self.validate()

    def _preview_refusal(self) -> str | None:
        if self._refusal is not None and self._refusal[0] == (self.preview_key() or ""):
            return self._refusal[1]
        return None

    def _step_fields(self) -> dict[str, list[str]]:
        """Which top-level spec properties each step's form shows."""
        return self.STEP_FIELDS

    def _build_steps(self) -> None:
        """Add every step page but Review to `steps`, in the order of `STEPS`."""
        raise NotImplementedError

    def _tracker_slots(self, tracker: Tracker) -> list[tuple[Any, Any]]:
        """(signal, slot) pairs connected to the tracker; moved over when the tracker changes."""
        return [(tracker.launch_failed, self._launch_failed), (tracker.schemas.changed, self._engine_schema_changed)]

    # Called: early in __init__ (add the run view to `stack` now, or later); after the forms were
    # built; as step `name` is shown; after the forms were filled, before validation; after
    # `workspace` changed; after set_workspace replaced `tracker`.
    def _build_run_view(self) -> None: ...
    def _connect_forms(self) -> None: ...
    # After the forms were rebuilt for another engine's schema: their editors are new (reconnect them).
    def _forms_rebuilt(self) -> None: ...
    def _entering_step(self, name: str) -> None: ...
    def _values_set(self) -> None: ...
    def _workspace_changed(self) -> None: ...
    def _tracker_changed(self) -> None: ...

    def show_run(self, run_id: str) -> None:
        raise NotImplementedError

    def show_wizard(self) -> None:
        self.stack.setCurrentWidget(self.wizard)

    # ------------------------------------------------------------------------------- steps
    def _step_page(self, name: str) -> tuple[QWidget, QVBoxLayout]:
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.setContentsMargins(0, 0, 8, 0)
        layout.setSpacing(12)
        intro = QLabel(self.STEP_INTROS[name])
        intro.setObjectName("subtitle")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        return page, layout

    def _form(self, name: str) -> SpecForm:
        form = SpecForm(self.schema, self.fields[name])
        self.forms[name] = form
        return form

    def _step_forms(self, name: str) -> list[SpecForm]:
        """The forms whose problems mark step `name` with ⚠ (by default the form of that name)."""
        return [self.forms[name]] if name in self.forms else []

    def _build_form_step(self, name: str) -> None:
        page, layout = self._step_page(name)
        layout.addWidget(self._form(name))
        layout.addStretch(1)
        self.steps.addWidget(scrolled(page))

    def _build_review_step(self) -> None:
        page, layout = self._step_page("Review")
        self.yaml_view = QPlainTextEdit()
        self.yaml_view.setReadOnly(True)
        mono(self.yaml_view)
        self.command_label = QLabel("")
        self.command_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.command_label.setWordWrap(True)
        self.command_label.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.problems_label = QLabel("")
        self.problems_label.setObjectName("fieldError")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        command_box = QGroupBox("Equivalent command")
        QVBoxLayout(command_box).addWidget(self.command_label)
        yaml_box = QGroupBox("Spec (YAML)")
        QVBoxLayout(yaml_box).addWidget(self.yaml_view)
        layout.addWidget(self.problems_label)
        layout.addWidget(command_box)
        if self.WHERE_STEP in self.STEPS:
            self.review_plan_box = LaunchPlanBox(compact=True)
            layout.addWidget(self.review_plan_box)
        layout.addWidget(yaml_box, 1)
        self.steps.addWidget(page)

    def go_to_step(self, index: int) -> None:
        last = len(self.STEPS) - 1
        index = max(0, min(index, last))
        if self.STEPS[index] == "Review":
            self.refresh_review()
        if self.STEPS[index] == self.CORPUS_STEP and getattr(self, "dataset_picker", None) is not None:
            self.dataset_picker.refresh()
        if self.STEPS[index] == self.WHERE_STEP:
            self.refresh_engines()
        self._entering_step(self.STEPS[index])
        if self.steps.currentIndex() != index:
            self.steps.setCurrentIndex(index)
        if self.step_list.currentRow() != index:
            self.step_list.setCurrentRow(index)
        self.back_button.setEnabled(index > 0)
        self.next_button.setVisible(index < last)
        self.launch_button.setVisible(index == last)

    def go_to_review(self) -> None:
        self.go_to_step(len(self.STEPS) - 1)

    def _on_review(self) -> bool:
        return self.steps.currentIndex() == len(self.STEPS) - 1

    # ------------------------------------------------------------------------------ values
    def default_values(self) -> dict:
        """The values a new wizard starts from: the defaults of the engine's schema, required fields
        blank."""
        return self.engine_schema.defaults(self.KIND)

    def reset(self) -> None:
        """Back to the defaults of the spec."""
        defaults = self.default_values()
        for form in self.forms.values():
            form.set_values(defaults)
        self.go_to_step(0)
        self.update_preview()
        self._values_set()
        self.validate()

    def spec_values(self) -> dict:
        data: dict = {"kind": self.KIND}
        for form in self.forms.values():
            data.update(form.values())
        return data

    def spec_data(self) -> dict:
        """The current values as a spec dict (not validated; `build_spec()` validates)."""
        return self.spec_values()

    def set_spec_data(self, data: dict) -> None:
        """Fill the forms from a spec dict; keys it leaves out keep their current values."""
        merged = deep_merge(self.spec_values(), data)
        for form in self.forms.values():
            form.set_values(merged)
        self._values_set()
        self.validate()

    def set_workspace(self, workspace: Path | str, tracker: Tracker | None = None) -> None:
        """Write specs into `workspace` from now on, and launch through `tracker` when given."""
        self.workspace = Path(workspace)
        if getattr(self, "dataset_picker", None) is not None:
            self.dataset_picker.set_workspace(self.workspace)
        self._workspace_changed()
        if tracker is not None and tracker is not self.tracker:
            if self.tracker is not None:
                for signal, slot in self._tracker_slots(self.tracker):
                    try:
                        signal.disconnect(slot)
                    except (RuntimeError, TypeError):
                        pass
            self.tracker = tracker
            for signal, slot in self._tracker_slots(tracker):
                signal.connect(slot)
            self._tracker_changed()
        if self._on_review():
            self.refresh_review()

    def build_spec(self) -> dict:
        """The current values as a spec, checked; raises SpecError listing every problem."""
        data = self.spec_values()
        problems = self.spec_problems(data)
        if problems:
            raise SpecError("wizard", problems)
        return data

    def spec_problems(self, data: dict) -> list[SpecProblem]:
        """Every problem known now: the fields by the engine's schema; across fields, what the engine's
        `validate` said of these very values, or at once this studio's own checks when the engine's
        specs are this studio's (the same schema hash)."""
        problems = self.engine_schema.problems(data)
        flagged = {p.field for p in problems}
        checked_yaml, engine_problems = self._engine_problems
        if checked_yaml and checked_yaml == spec_yaml(data):
            problems += [p for p in engine_problems if p.field not in flagged]
        elif self.engine_schema.hash == own_schema().hash:
            try:
                parse_spec(data, "wizard")
            except SpecError as e:
                problems += [p for p in e.problems if p.field not in flagged]
        return problems

    # --------------------------------------------------------------------- the engine's schema
    def in_controls(self, text: str) -> str:
        """An engine's message with the spec fields it names as this wizard shows them (“Chat template”
        on the Data step)."""
        return in_controls(text, self.schema, self.fields)

    def schema_of(self, engine: str) -> EngineSchema:
        """The spec schema of `engine` as known now (this studio's own without a tracker)."""
        return self.tracker.schemas.schema(engine) if self.tracker is not None else own_schema()

    def _engine_chosen(self) -> None:
        if self.tracker is not None:
            self.tracker.schemas.refresh(self.engine_name())
        self.use_engine_schema(self.schema_of(self.engine_name()))
        self.fill_engine_hosts()
        self.update_launch_plan()  # a Slurm engine shows its batch script

    def fill_engine_hosts(self) -> None:
        """An engine whose profile lists node hosts trains on all of them: its hosts, their number and their
        ssh config go into the spec's resources, where Where to run and Review show them (the spec stays what
        the engine reads). Choosing another engine takes back what was filled, unless it was edited since."""
        if self.WHERE_STEP not in self.forms:
            return
        chosen = (self.tracker.engines if self.tracker is not None else {}).get(self.engine_name())
        hosts = list(getattr(chosen, "node_hosts", ()) or ())
        filled = getattr(self, "_filled_hosts", None)
        resources = self.forms[self.WHERE_STEP].values().get("resources") or {}
        if hosts:
            self._filled_hosts = {"hosts": hosts, "nodes": len(hosts), "ssh_config": chosen.node_ssh_config or None}
            self.set_spec_data({"resources": dict(self._filled_hosts)})
        elif filled and all(resources.get(key) == value for key, value in filled.items()):
            self._filled_hosts = None
            self.set_spec_data({"resources": {"hosts": [], "nodes": 1, "ssh_config": None}})

    def _engine_schema_changed(self, engine: str) -> None:
        if engine == self.engine_name():
            self.use_engine_schema(self.schema_of(engine))

    def use_engine_schema(self, schema: EngineSchema) -> None:
        """Show the forms of `schema` (the chosen engine's), keeping the values its fields still have."""
        if schema.hash == self.engine_schema.hash:
            return
        if self.KIND not in schema.kinds:
            self.engine_schema = schema
            self.validate()
            return
        values = self.spec_values()
        self.engine_schema = schema
        self.schema = schema.kind_schema(self.KIND)
        self.fields = self._step_fields()
        for name, form in self.forms.items():
            form.set_schema(self.schema, self.fields.get(name))
        self._forms_rebuilt()
        self.set_spec_data(values)

    def _engine_of_run(self) -> Any:
        return self.tracker.engines.get(self.engine_name()) if self.tracker is not None else None

    def check_on_engine(self) -> None:
        """Have the chosen engine check the current values (`studio-engine validate`) in the background;
        the problems it finds are shown at their fields."""
        data = self.spec_values()
        engine = self._engine_of_run()
        if engine is None or self.engine_schema.problems(data):
            return
        text = spec_yaml(data)
        if self._engine_problems[0] == text or self._checking.key == text:
            return
        path = self.workspace / "specs" / "check" / f"{data.get('name') or self.KIND}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        command = engine.validate(path)
        command.failed.connect(lambda _message, c=command, key=text: self._checking_stderr.__setitem__(
            key, c.exit.stderr if c.exit else ""))
        self._checking.start(command, text)

    def _engine_checked(self, text: str, problems: list[SpecProblem]) -> None:
        self._checking_stderr.pop(text, None)
        self._engine_problems = (text, problems)
        self.validate()

    def validate(self) -> list:
        """Check the values; show each problem at its field and mark the steps that have one."""
        self.problems = self.spec_problems(self.spec_values())
        for i, name in enumerate(self.STEPS):
            shown = [p for form in self._step_forms(name) for p in form.show_problems(self.problems)]
            item = self.step_list.item(i)
            item.setText(f"{i + 1}.  {name}" + ("  ⚠" if shown else ""))
            item.setToolTip("\n".join(str(p) for p in shown))
        count = len(self.problems)
        refusal = self._preview_refusal()
        if self._launching is None:  # while a launch is under way the line says how it goes
            if count or self.status_label.text().endswith(PROBLEMS_MARKED):
                # Only a count of problems gives way to none: a launch's status stays until the launch says more.
                self.status_label.setText(f"{count} problem{'s' if count != 1 else ''} to fix before launching "
                                          f"{PROBLEMS_MARKED}" if count else "")
            if refusal and not count:
                self.status_label.setText(f"Launch waits: the engine could not preview these settings ({refusal}). "
                                          f"Change them, or preview again {PROBLEMS_MARKED}")
        self.launch_button.setEnabled(not count and not refusal and self._launching is None)
        self.update_launch_plan()
        if self._on_review():
            self.refresh_review()
        return self.problems

    def spec_path_for(self, spec: dict) -> Path:
        return self.workspace / "specs" / f"{spec['name']}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"

    def refresh_review(self) -> None:
        try:
            spec = self.build_spec()
        except SpecError as e:
            self.problems_label.setText("Fix these before launching:\n" + "\n".join(f"• {p}" for p in e.problems))
            self.problems_label.show()
            self.yaml_view.setPlainText(spec_yaml(self.spec_values()))
            self.command_label.setText("studio-engine run spec.yaml")
            return
        self.problems_label.hide()
        self.yaml_view.setPlainText(spec_yaml(spec))
        self.check_on_engine()
        path = self.spec_path_for(spec)
        self.command_label.setText(
            f"studio-engine --workspace {shlex.quote(str(self.workspace))} run {shlex.quote(str(path))}\n"
            f"# in short, from the workspace:  studio-engine run spec.yaml")

    # ---------------------------------------------------------------------------- launch
    def write_spec(self) -> Path:
        spec = self.build_spec()
        path = self.spec_path_for(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec_yaml(spec), encoding="utf-8")
        self.last_spec_path = path
        return path

    def launch(self) -> Path | None:
        """Write the spec YAML into the workspace and start it through the tracker."""
        if self.validate():
            self.go_to_review()
            return None
        path = self.write_spec()
        if self.tracker is None:
            self.status_label.setText(f"Spec written to {path}; no engine is connected to run it.")
            return path
        self.launch_button.setEnabled(False)
        engine = self._engine_of_run()
        if engine is None:
            self._start(path)
            return path
        # The engine's own checks first (those across fields too): a spec it refuses never becomes a run.
        self.status_label.setText(f"Checking {path.name} on the engine…")
        check = engine.validate(path)
        self._launching = check
        check.succeeded.connect(lambda _answer: self._start(path))
        check.failed.connect(lambda message: self._refused(path, check, message))
        return path

    def _refused(self, path: Path, check: Any, message: str) -> None:
        self._launching = None
        stderr = check.exit.stderr if check.exit else ""
        problems = problems_from_engine(stderr) if check.exit and check.exit.code == 2 else []
        if not problems:
            self._launch_failed(message)
            return
        self._engine_problems = (path.read_text(encoding="utf-8"), problems)
        self.validate()
        self.go_to_review()
        self.status_label.setText("The engine found problems in the spec (marked ⚠); nothing was started.")

    def _start(self, path: Path) -> None:
        engine = self.selected_engine()
        where = f"{engine} (local inputs are copied there first)" if engine else "the local engine"
        self.status_label.setText(f"Starting {path.name} on {where}…")
        command = self.tracker.launch(path, engine=engine) if engine else self.tracker.launch(path)
        if hasattr(command, "progress"):
            command.progress.connect(lambda text: self.status_label.setText(text))
        self._launching = command
        command.succeeded.connect(self._launch_succeeded)
        command.failed.connect(lambda _message: self._launch_done())

    def _launch_done(self) -> None:
        self._launching = None
        self.launch_button.setEnabled(not self.problems and not self._preview_refusal())

    def _launch_succeeded(self, info: Any) -> None:
        self._launch_done()
        if isinstance(info, dict) and info.get("run_id"):
            self.status_label.setText("")
            self.show_run(info["run_id"])
            self.launched.emit(info["run_id"])

    def _launch_failed(self, message: str) -> None:
        self._launch_done()
        self.go_to_review()
        self.problems_label.setText(f"The run did not start:\n{self.in_controls(message)}")
        self.problems_label.show()
        self.status_label.setText("The run did not start; see Review.")
