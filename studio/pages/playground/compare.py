"""The Compare tab: the variables and variants on top, then the models (chosen from the workspace's
runs or typed) and the grid of answers, which can give way to the differences between two picked
answers or to one answer's prompt as its model reads it."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QStackedWidget, QVBoxLayout,
    QWidget,
)

from studio.pages.playground.cell import PromptView
from studio.pages.playground.grid import AnswerGrid
from studio.pages.playground.prompt import VariablesTable, VariantsEditor
from studio.pages.playground.runner import CellRunner
from studio.models.playground_models import count_tokens, default_label, find_playground_models, model_reads, read_layout
from studio.models.playground_session import PICK_TWO, CellOutput, ModelColumn, Session, Variant, problem_text
from studio.widgets.text_diff import TextDiffView

NO_MODELS = ("<b>No model to ask yet.</b><br>Models come from your runs: pretrain one on the Pretrain page, "
             "fine-tune one on the Fine-tune page, or run <code>studio-engine demo</code> for the whole pipeline on "
             "this computer. You can also type a model folder, a run id or a hub id (for example "
             "<code>Qwen/Qwen2.5-0.5B-Instruct</code>, which needs the network) in the box above and press "
             "<b>Add model</b>.")


class CompareTab(QWidget):
    """Public: `variables`, `variants`, `grid`, `model_picker`, `add_button`, `run_button`, `stop_button`,
    `diff_button`, `label_button`, `server_label`, `stack`, `diff_view`, `prompt_view`, `empty`, and
    `add_model`, `remove_model`, `run_all`, `run_cell`, `stop_all`, `show_diff`, `show_prompt`, `show_grid`."""

    message = Signal(str)
    session_edited = Signal()

    def __init__(self, runner: CellRunner, workspace: Path, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.workspace = workspace
        self.session = Session()
        self.variables = VariablesTable()
        self.variants = VariantsEditor()
        variables_box, variants_box = QGroupBox("Variables"), QGroupBox("Prompt variants (rows)")
        for box, widget in ((variables_box, self.variables), (variants_box, self.variants)):
            box_layout = QVBoxLayout(box)
            box_layout.setContentsMargins(8, 6, 8, 6)
            box_layout.addWidget(widget)
        top = QSplitter(Qt.Horizontal)
        top.addWidget(variables_box)
        top.addWidget(variants_box)
        top.setSizes([280, 570])

        self.model_picker = QComboBox()
        self.model_picker.setEditable(True)
        self.model_picker.setInsertPolicy(QComboBox.NoInsert)
        self.model_picker.lineEdit().setPlaceholderText("A model of your runs, a folder, a run id or a hub id")
        self.model_picker.setMinimumContentsLength(22)
        self.model_picker.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        folder = QPushButton("Folder…")
        folder.clicked.connect(self._choose_folder)
        self.add_button = QPushButton("Add model")
        self.add_button.clicked.connect(self._add_chosen)
        self.server_label = QLabel("")
        self.server_label.setObjectName("help")
        models_bar = QHBoxLayout()
        models_bar.addWidget(QLabel("Models (columns)"))
        models_bar.addWidget(self.model_picker, 1)
        models_bar.addWidget(folder)
        models_bar.addWidget(self.add_button)

        self.grid = AnswerGrid(workspace)
        self.grid.stop_requested.connect(self.runner.stop)
        self.grid.prompt_requested.connect(self.show_prompt)
        self.grid.picks_changed.connect(self._picks_changed)
        self.grid.model_removed.connect(self.remove_model)
        self.grid.model_changed.connect(lambda _: self.session_edited.emit())
        self.empty = QLabel(NO_MODELS)
        self.empty.setObjectName("emptyState")
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignCenter)
        self.empty.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.diff_view = TextDiffView("Pick two answers (the boxes in their corners) to see how they differ.")
        diff_page = QWidget()
        diff_layout = QVBoxLayout(diff_page)
        diff_layout.setContentsMargins(0, 0, 0, 0)
        back = QPushButton("← Grid")
        back.clicked.connect(self.show_grid)
        diff_head = QHBoxLayout()
        diff_head.addWidget(back)
        diff_head.addStretch(1)
        diff_layout.addLayout(diff_head)
        diff_layout.addWidget(self.diff_view, 1)
        self.prompt_view = PromptView()
        self.prompt_view.back_button.clicked.connect(self.show_grid)
        self.stack = QStackedWidget()
        for widget in (self.empty, self.grid, diff_page, self.prompt_view):
            self.stack.addWidget(widget)
        self._diff_page = diff_page

        self.run_button = QPushButton("Run all   Ctrl+Enter")
        self.run_button.setObjectName("primary")
        self.run_button.clicked.connect(self.run_all)
        self.stop_button = QPushButton("Stop all   Esc")
        self.stop_button.clicked.connect(self.stop_all)
        self.diff_button = QPushButton("Differences")
        self.diff_button.setToolTip("The two picked answers side by side, their differences highlighted")
        self.diff_button.clicked.connect(self.show_diff)
        self.label_button = QPushButton("Send to labeling…")
        self.label_button.setToolTip("The two picked answers to the same prompt, as a pair to label")
        actions = QHBoxLayout()
        actions.addWidget(self.run_button)
        actions.addWidget(self.stop_button)
        actions.addWidget(self.server_label, 1)
        actions.addWidget(self.diff_button)
        actions.addWidget(self.label_button)

        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 4, 0, 0)
        bottom_layout.setSpacing(6)
        bottom_layout.addLayout(models_bar)
        bottom_layout.addWidget(self.stack, 1)
        bottom_layout.addLayout(actions)
        split = QSplitter(Qt.Vertical)
        split.addWidget(top)
        split.addWidget(bottom)
        split.setStretchFactor(1, 1)
        split.setSizes([165, 600])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addWidget(split)

        self.variables.row_chosen.connect(lambda _: self._row_chosen())
        self.variables.edited.connect(self.session_edited)
        self.variants.variant_edited.connect(self._variant_edited)
        self.variants.variants_changed.connect(self._layout_changed)
        self.runner.changed.connect(self._cell_changed)
        self.runner.streamed.connect(self._cell_streamed)
        self.refresh_models()

    # ------------------------------------------------------------------------------ session
    def set_session(self, session: Session) -> None:
        self.session = session
        self.variables.set_session(session)
        self.variants.set_session(session)
        self._layout_changed()

    def refresh_models(self) -> None:
        """The picker's list: the models, adapters and checkpoints of the workspace's runs."""
        text = self.model_picker.currentText()
        self.model_picker.clear()
        for found in find_playground_models(self.workspace):
            self.model_picker.addItem(f"{found.label}  —  {found.detail}", found.path)
            self.model_picker.setItemData(self.model_picker.count() - 1, found.path, Qt.ToolTipRole)
        self.model_picker.setCurrentIndex(0 if self.model_picker.count() else -1)
        if not self.model_picker.count():
            self.model_picker.setEditText(text)

    def add_model(self, path: str, adapter: str = "", label: str = "") -> ModelColumn:
        column = ModelColumn(path.strip(), adapter.strip())
        column.label = self.session.unique_label(label or default_label(column.path, column.adapter))
        self.session.models.append(column)
        self._layout_changed()
        return column

    def remove_model(self, column_id: str) -> None:
        for key in [k for k in self.runner.handles if k.endswith(f"/{column_id}")]:
            self.runner.stop(key)
        self.session.models = [m for m in self.session.models if m.id != column_id]
        self._layout_changed()

    def _add_chosen(self) -> None:
        index, text = self.model_picker.currentIndex(), self.model_picker.currentText().strip()
        if index >= 0 and self.model_picker.itemText(index) == text:
            found = next(f for f in find_playground_models(self.workspace) if f.path == self.model_picker.itemData(index))
            self.add_model(found.path, label=found.label)
        elif text:
            self.add_model(text)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model, checkpoint or adapter folder",
                                                  str(self.workspace))
        if folder:
            self.add_model(folder)

    # ------------------------------------------------------------------------------ running
    def run_all(self) -> None:
        if not self.session.models:
            self.message.emit("Add a model first: pick one of your runs above, or type a folder or hub id.")
            return
        self.show_grid()
        for variant in self.session.variants:
            for model in self.session.models:
                self.run_cell(variant, model)

    def run_cell(self, variant: Variant, model: ModelColumn) -> None:
        key = self.session.cell_key(variant, model)
        output = self.session.outputs.setdefault(key, CellOutput())
        try:
            rendered = self.session.render(variant)
        except Exception as e:  # noqa: BLE001 - a template error, a bad examples file, a Jinja syntax error
            self.runner.fail(key, output, *problem_text(e))
            return
        output.prompt, output.system = rendered.text, rendered.system or ""
        self.runner.start(key, output, model, rendered.messages)

    def stop_all(self) -> None:
        self.runner.stop_all()

    # ------------------------------------------------------------------------------ views
    def show_grid(self) -> None:
        if not self.session.models:
            found = self.model_picker.count()
            self.empty.setText(NO_MODELS if not found else
                               f"<b>No model in this session yet.</b><br>Your runs have {found} model"
                               f"{'s' if found != 1 else ''} in the box above: pick one and press <b>Add model</b>, or "
                               "type a model folder, a run id or a hub id there.")
        self.stack.setCurrentWidget(self.grid if self.session.models else self.empty)

    def show_diff(self) -> None:
        picks = self.grid.picks
        if len(picks) != 2:
            self.message.emit(PICK_TWO)
            return
        left, right = (self.session.outputs.get(k) or CellOutput() for k in picks)
        self.diff_view.set_texts(left.text, right.text, self.session.describe_key(picks[0]),
                                 self.session.describe_key(picks[1]))
        self.stack.setCurrentWidget(self._diff_page)

    def show_prompt(self, key: str) -> None:
        _, variant_id, column_id = key.split("/")
        variant, model = self.session.variant(variant_id), self.session.model(column_id)
        self.variants.list.setCurrentRow(self.session.variants.index(variant))  # its editor beside its prompt
        output = self.session.outputs.get(key)
        if output is not None and output.messages:
            messages = output.messages  # what was asked, even if the variant changed since
        else:
            try:
                messages = self.session.render(variant).messages
            except Exception as e:  # noqa: BLE001 - shown instead of the prompt
                messages = [{"role": "user", "content": "(cannot render: {} {})".format(*problem_text(e))}]
        rendered = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        layout = read_layout(model.path, model.adapter, self.workspace, model.chat_template)
        try:
            reads = model_reads(messages, layout)
            counted = count_tokens(reads, layout)
        except Exception as e:  # noqa: BLE001 - a chat template that raises for this conversation
            reads, counted = f"The chat template cannot lay out this prompt: {e}", None
        note = f"{model.label} reads it laid out with {layout.source}."
        if counted is not None:
            note += f" {counted} tokens, counted here with its tokenizer."
        if output is not None and output.prompt_tokens is not None:
            note += f" The server counted {output.prompt_tokens}."
        note += f" {layout.problem}" if layout.problem else ""
        self.prompt_view.show_prompt(self.session.describe_key(key), variant.template_source(self.session.input_field()),
                                     rendered, reads, note)
        self.stack.setCurrentWidget(self.prompt_view)

    # ------------------------------------------------------------------------------ updates
    def _layout_changed(self) -> None:
        self.grid.rebuild(self.session)
        if self.stack.currentWidget() in (self.grid, self.empty):
            self.show_grid()
        self._picks_changed()
        self.session_edited.emit()

    def _row_chosen(self) -> None:
        self.grid.refresh(self.session)
        self.session_edited.emit()

    def _variant_edited(self, variant_id: str) -> None:
        variant = self.session.variant(variant_id)
        if variant is not None:
            self.grid.set_row_label(variant)
        self.session_edited.emit()

    def _picks_changed(self) -> None:
        # Enabled either way: pressed without two answers picked, they say how to pick them.
        picked = len(self.grid.picks)
        hint = "" if picked == 2 else f" — tick two answers first ({picked} ticked)"
        self.diff_button.setToolTip("The two picked answers side by side, their differences highlighted" + hint)
        self.label_button.setToolTip("The two picked answers to the same prompt, as a pair to label" + hint)

    def _cell_changed(self, key: str) -> None:
        cell = self.grid.cells.get(key)
        if cell is not None:
            cell.show_output(self.session.outputs.get(key), self.session.check(key))

    def _cell_streamed(self, key: str, text: str) -> None:
        cell = self.grid.cells.get(key)
        if cell is not None and key in self.session.outputs:
            cell.append(text, self.session.outputs[key])
