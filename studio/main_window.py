"""The main window: a sidebar of workflows, the page of the chosen one, and the jobs dock.

It only composes: the store (`<workspace>/store.db`), the local engine and the run tracker are made
here (or passed in by tests) and handed to the pages, which talk through signals.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

if TYPE_CHECKING:  # for the annotations: start-up imports the store and the tracker only to make them
    from studio.client.run_tracker import Tracker
    from studio.models.store import Store

# Sidebar order; Ctrl+1..8 follow it.
PAGES: tuple[tuple[str, str], ...] = (
    ("data", "Data"),
    ("tokenizer", "Tokenizer"),
    ("pretrain", "Pretrain"),
    ("finetune", "Fine-tune"),
    ("label", "Label"),
    ("rlhf", "Reward & PPO"),
    ("playground", "Playground"),
    ("runs", "Runs"),
)
PAGE_KEYS = tuple(key for key, _ in PAGES)


def default_store(workspace: Path):
    from studio.models.store import Store

    return Store(Path(workspace) / "store.db")


def default_tracker(store: Any, workspace: Path):
    from studio.client.engine import LocalEngine
    from studio.models.engine_setup import SETTING_KEY
    from studio.client.run_tracker import RunTracker

    # The engine's Python chosen on the first-run screen, else the studio's own (checked at start).
    python = store.get_setting(SETTING_KEY) if store is not None else None
    return RunTracker(store, LocalEngine(python=python, workspace=workspace))


class MonitorPage(QWidget):
    """The run monitor for a run opened from the Runs page or the jobs dock (built on first use)."""

    back = Signal()

    def __init__(self, store: Any, tracker: Tracker | None, parent: QWidget | None = None):
        super().__init__(parent)
        from studio.widgets.run_monitor import RunMonitor  # pyqtgraph loads here, not at start-up

        self.monitor = RunMonitor(store, tracker)
        self.back_button = QPushButton("← All runs")
        self.back_button.clicked.connect(self.back)
        bar = QHBoxLayout()
        bar.setContentsMargins(16, 10, 16, 0)
        bar.addWidget(self.back_button)
        bar.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addLayout(bar)
        layout.addWidget(self.monitor, 1)


class MainWindow(QMainWindow):
    """Public for tests: `sidebar`, `stack`, `page(key)` (builds it on first use), `pages` (those
    built so far), `jobs_dock`, `store`, `tracker`, `show_page(key)`, `current_page_key()`,
    `engines_button` (the status bar's engines; opens `show_engines()`, the Engines dialog, also
    File ▸ Engines… / Ctrl+Shift+E; `engines_dialog` once opened), `load_engine_profiles()`,
    `open_run(run_id)`, `monitor_page` (None until a run is opened), `engine_check` (the engine found
    at start, an `EngineCheck`), `first_run_page` (None unless no engine was found).

    `engine_probe`: checks for a working engine at start (default: one when the window makes its
    own tracker; tests that pass a tracker get no check unless they pass a probe)."""

    def __init__(self, workspace: Path | str, store: Store | None = None, tracker: Tracker | None = None,
                 reattach: bool = True, engine_probe: Any = None, parent: QWidget | None = None):
        super().__init__(parent)
        self.workspace = Path(workspace).expanduser()
        self.workspace.mkdir(parents=True, exist_ok=True)
        self.store = store if store is not None else default_store(self.workspace)
        self.tracker = tracker if tracker is not None else default_tracker(self.store, self.workspace)
        own_tracker = tracker is None
        self.pages: dict[str, QWidget] = {}
        self._holders: dict[str, QWidget] = {}
        self.monitor_page: MonitorPage | None = None
        self.first_run_page: QWidget | None = None
        self.engine_check: Any = None
        self.setWindowTitle(str(self.workspace))  # Qt adds the application's name: "… — Atelier"
        self.resize(1280, 800)
        self.setMinimumSize(QSize(960, 600))

        self.sidebar = QListWidget()
        self.sidebar.setObjectName("sidebar")
        self.sidebar.setFixedWidth(200)
        self.sidebar.setIconSize(QSize(18, 18))
        self.sidebar.setFocusPolicy(Qt.NoFocus)
        self.stack = QStackedWidget()
        for i, (key, title) in enumerate(PAGES):
            item = QListWidgetItem(title)
            item.setData(Qt.UserRole, key)
            item.setToolTip(f"{title}  (Ctrl+{i + 1})")
            item.setSizeHint(QSize(180, 40))
            self.sidebar.addItem(item)
            # Pages are built the first time they are shown: start-up builds only the first one.
            holder = QWidget()
            holder_layout = QVBoxLayout(holder)
            holder_layout.setContentsMargins(0, 0, 0, 0)
            self._holders[key] = holder
            self.stack.addWidget(holder)
        self.sidebar.currentRowChanged.connect(self._on_sidebar_row)
        self._paint_icons()

        brand = QLabel("Atelier")
        brand.setStyleSheet("font-size: 15pt; font-weight: 700; padding: 14px 16px 6px 16px;")
        side = QWidget()
        side.setObjectName("sideColumn")
        side_layout = QVBoxLayout(side)
        side_layout.setContentsMargins(0, 0, 0, 0)
        side_layout.setSpacing(0)
        side_layout.addWidget(brand)
        side_layout.addWidget(self.sidebar, 1)
        central = QWidget()
        central_layout = QHBoxLayout(central)
        central_layout.setContentsMargins(0, 0, 0, 0)
        central_layout.setSpacing(0)
        central_layout.addWidget(side)
        central_layout.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        from studio.widgets.jobs_dock import JobsDock

        self.jobs_dock = JobsDock(self.store, self.tracker, self)
        self.jobs_dock.open_run.connect(self.open_run)
        self.addDockWidget(Qt.RightDockWidgetArea, self.jobs_dock)
        self.resizeDocks([self.jobs_dock], [220], Qt.Horizontal)
        self.jobs_button = QPushButton("")
        self.jobs_button.setObjectName("statusEngines")
        self.jobs_button.setFlat(True)
        self.jobs_button.setCursor(Qt.PointingHandCursor)
        self.jobs_button.setToolTip("Show or hide the active jobs (View ▸ Active jobs).")
        self.jobs_button.clicked.connect(lambda: self.jobs_dock.setVisible(not self.jobs_dock.isVisible()))
        self.jobs_dock.count_changed.connect(self._show_jobs_count)
        self._show_jobs_count(len(self.jobs_dock.rows))

        self.engines_dialog: QWidget | None = None
        self._engine_profiles: dict[str, Any] = {}
        self.engines_button = QPushButton("Engines: local")
        self.engines_button.setObjectName("statusEngines")
        self.engines_button.setFlat(True)
        self.engines_button.setCursor(Qt.PointingHandCursor)
        self.engines_button.setToolTip("The engines runs can go to. Click to add or test an SSH engine (Ctrl+Shift+E).")
        self.engines_button.clicked.connect(self.show_engines)
        self.statusBar().addPermanentWidget(self.jobs_button)
        self.statusBar().addPermanentWidget(self.engines_button)
        # Where the studio stands, in a label of its own: a menu's tips and a passing message only cover it.
        self.status_label = QLabel("")
        self.status_label.setObjectName("help")
        self.statusBar().addWidget(self.status_label, 1)
        self.load_engine_profiles()
        self._build_menu()
        self.set_status("engine: local")

        self.tracker.schemas.changed.connect(self._engine_schema_changed)
        self.tracker.run_error.connect(lambda run_id, message: self.statusBar().showMessage(
            f"{run_id}: {message.splitlines()[0] if message else ''}", 15000))
        self.show_page("pretrain")
        if engine_probe is None and own_tracker:
            from studio.pages.first_run.page import EngineProbe

            engine_probe = EngineProbe(self.workspace, parent=self)
        if engine_probe is not None:
            self._check_engine(engine_probe)
        if reattach:
            # After the first paint: catching up reads events files and starts attach processes.
            QTimer.singleShot(0, self._reattach)

    def _show_jobs_count(self, count: int) -> None:
        self.jobs_button.setText(f"{count} job{'s' if count != 1 else ''} running" if count else "No job running")
        self.jobs_button.setEnabled(bool(count))

    def set_status(self, engine: str) -> None:
        """The status bar's lasting line: the workspace and the engine's state."""
        self.status_label.setText(f"Workspace {self.workspace}  ·  {engine}")

    # --------------------------------------------------------------------------- the engine
    def _check_engine(self, probe: Any) -> None:
        """Look for a working engine (the studio's own Python answers at once, another in a QProcess);
        none: the first-run screen says what was checked and how to install one."""
        from studio.models.engine_setup import SETTING_KEY, candidates

        self._engine_probe = probe
        probe.finished.connect(self._engine_probed)
        self.set_status("engine: looking for it…")
        probe.start(candidates(self.store.get_setting(SETTING_KEY) if self.store is not None else None))

    def _engine_probed(self, found: Any) -> None:
        if found is not None:
            self.use_engine(found)
        else:
            self.show_first_run(list(self._engine_probe.checks))

    def use_engine(self, check: Any) -> None:
        """Run the local engine with the interpreter of `check` (saved when the user chose it)."""
        from studio.models.engine_setup import SETTING_KEY

        self.engine_check = check
        if check.source == "chosen" and self.store is not None:
            self.store.set_setting(SETTING_KEY, check.python)
        from studio.client.engine import LocalEngine

        local = self.tracker.engines.get("local")
        if isinstance(local, LocalEngine):
            local.use_python(check.python)
        self.set_status(f"engine: local ({check.python})")
        # The wizards follow this engine's own schema; ask it again only when its hash is not the one known.
        self.tracker.schemas.refresh(self.tracker.default_engine, check.schema_hash)

    def _engine_schema_changed(self, engine: str) -> None:
        """Say when an engine accepts other job specs than this studio's (the wizards follow the engine)."""
        differences = self.tracker.schemas.differences(engine)
        if differences:
            self.statusBar().showMessage(f"The engine '{engine}' accepts other job specs than this studio; the "
                                         f"wizards use its own: {' '.join(differences)}", 30000)

    def load_engine_profiles(self) -> list[str]:
        """Give the tracker a `RemoteEngine` for each saved SSH profile (replaced when the profile changed;
        removed with it unless a run on it is still active). Returns the SSH engines' names."""
        engines = self.tracker.engines
        if self.store is None:
            return []
        from engine.rundir import ACTIVE_STATES
        from studio.models.engine_profiles import load_profiles, remote_engine

        profiles = {p.name: p for p in load_profiles(self.store) if p.kind == "ssh"}
        for name, profile in profiles.items():
            if self._engine_profiles.get(name) != profile or name not in engines:
                self.tracker.add_engine(remote_engine(profile, parent=self.tracker))
                self._engine_profiles[name] = profile
        busy = {r.engine for r in self.store.runs(state=ACTIVE_STATES)}
        for name in [n for n, e in engines.items() if e.is_remote]:
            if name not in profiles and name not in busy:
                del engines[name]  # its runs, if any, stay in the store; nothing follows them any more
                self._engine_profiles.pop(name, None)
        self._show_engines_label()
        if getattr(self, "jobs_dock", None) is not None:
            self.jobs_dock.sync_queues()
        return [n for n, e in engines.items() if e.is_remote]

    def _show_engines_label(self) -> None:
        remote = [n for n, e in self.tracker.engines.items() if e.is_remote]
        self.engines_button.setText("Engines: local" + "".join(f"  ·  {n} (SSH)" for n in remote))

    def show_engines(self) -> QWidget:
        """The Engines dialog: SSH profiles, Test connection, host keys (File ▸ Engines…, Ctrl+Shift+E, or a
        click on the status bar's engines)."""
        if self.engines_dialog is None:
            from studio.widgets.engine_profiles_dialog import EngineProfilesDialog

            python = self.engine_check.python if self.engine_check is not None else None
            self.engines_dialog = EngineProfilesDialog(self.store, local_python=python, parent=self)
            self.engines_dialog.profiles_changed.connect(self._profiles_changed)
        self.engines_dialog.reload()
        self.engines_dialog.open()
        return self.engines_dialog

    def _profiles_changed(self) -> None:
        self.load_engine_profiles()
        from studio.widgets.run_step import RunStep

        for widget in self.findChildren(RunStep):
            widget.refresh_engines()

    def show_first_run(self, checks: list) -> QWidget:
        """The first-run screen, listing `checks` (what was tried and why each failed)."""
        if self.first_run_page is None:
            from studio.pages.first_run.page import FirstRunPage

            page = FirstRunPage(self.workspace, self.tracker, store=self.store)
            page.engine_ready.connect(self.use_engine)
            page.continue_to_studio.connect(
                lambda: self.show_page("runs" if page.demo.running else "pretrain"))
            self.first_run_page = page
            self.stack.addWidget(page)
        self.first_run_page.show_checks(checks)
        with_signals_blocked(self.sidebar, lambda: self.sidebar.setCurrentRow(-1))
        self.stack.setCurrentWidget(self.first_run_page)
        self.set_status("engine: none found")
        self.first_run_page.python_field.setFocus()
        return self.first_run_page

    def page(self, key: str) -> QWidget:
        """The page widget of a sidebar entry, built on first use."""
        if key not in self.pages:
            page = self._make_page(key)
            self.pages[key] = page
            self._holders[key].layout().addWidget(page)
        return self.pages[key]

    def _make_page(self, key: str) -> QWidget:
        if key == "data":
            from studio.pages.data.page import DataPage

            page = DataPage(self.store, self.tracker, self.workspace)
            page.use_dataset_in.connect(self.use_dataset)
            return page
        if key == "pretrain":
            from studio.pages.pretrain.page import PretrainPage

            return PretrainPage(self.store, self.tracker, self.workspace)
        if key == "finetune":
            from studio.pages.finetune.page import FinetunePage

            return FinetunePage(self.store, self.tracker, self.workspace)
        if key == "tokenizer":
            from studio.pages.tokenizer.page import TokenizerPage

            return TokenizerPage(self.store, self.tracker, self.workspace)
        if key == "label":
            from studio.pages.label.page import LabelPage

            return LabelPage(self.store, self.tracker, self.workspace)
        if key == "rlhf":
            from studio.pages.rlhf.page import RLHFPage

            page = RLHFPage(self.store, self.tracker, self.workspace)
            page.open_run.connect(self.open_run)
            page.go_to_page.connect(self.show_page)
            return page
        if key == "playground":
            from studio.pages.playground.page import PlaygroundPage

            return PlaygroundPage(self.store, self.tracker, self.workspace)
        if key == "runs":
            from studio.pages.runs.page import RunsPage

            runs = RunsPage(self.store, self.tracker)
            runs.open_run.connect(self.open_run)
            runs.compare_runs.connect(self.compare_runs)
            return runs
        raise KeyError(f"no page '{key}'; the pages are: {', '.join(PAGE_KEYS)}")

    def _build_menu(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        open_action = QAction("&Open workspace…", self)
        open_action.setShortcut(QKeySequence.Open)
        open_action.setStatusTip("Open another workspace folder (its runs, labels and sessions) in a new window")
        open_action.triggered.connect(self.choose_workspace)
        file_menu.addAction(open_action)
        self.open_workspace_action = open_action
        self.addAction(open_action)
        import_action = QAction("&Import config…", self)
        import_action.setStatusTip("Turn a LLaMA-Factory or Axolotl training YAML into a spec, opened in its wizard")
        import_action.triggered.connect(lambda: self.import_config())
        file_menu.addAction(import_action)
        self.import_config_action = import_action
        engines_action = QAction("&Engines…", self)
        engines_action.setShortcut(QKeySequence("Ctrl+Shift+E"))
        engines_action.setStatusTip("Add, edit and test SSH engines")
        engines_action.triggered.connect(self.show_engines)
        file_menu.addAction(engines_action)
        file_menu.addSeparator()
        self.engines_action = engines_action
        self.addAction(engines_action)
        quit_action = QAction("&Quit", self)
        quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        quit_action.setShortcutContext(Qt.ApplicationShortcut)
        quit_action.triggered.connect(self.close)
        file_menu.addAction(quit_action)
        self.quit_action = quit_action
        self.addAction(quit_action)
        view_menu = self.menuBar().addMenu("&View")
        view_menu.addAction(self.jobs_dock.toggleViewAction())
        for name in ("light", "dark"):
            action = QAction(f"{name.capitalize()} theme", self)
            action.triggered.connect(lambda _=False, n=name: self.set_theme(n))
            view_menu.addAction(action)
        go_menu = self.menuBar().addMenu("&Go")
        for i, (key, title) in enumerate(PAGES):
            action = QAction(title.replace("&", "&&"), self)  # "Reward & PPO": an & is no mnemonic here
            action.setShortcut(QKeySequence(f"Ctrl+{i + 1}"))
            action.triggered.connect(lambda _=False, k=key: self.show_page(k))
            go_menu.addAction(action)
            self.addAction(action)
        help_menu = self.menuBar().addMenu("&Help")
        shortcuts_action = QAction("&Keyboard shortcuts…", self)
        shortcuts_action.setShortcut(QKeySequence("F1"))
        shortcuts_action.triggered.connect(self.show_shortcuts)
        help_menu.addAction(shortcuts_action)
        self.shortcuts_action = shortcuts_action
        self.addAction(shortcuts_action)

    def show_shortcuts(self) -> QWidget:
        """Help ▸ Keyboard shortcuts: the menus' and every page's, as the widgets bind them."""
        from studio.widgets.shortcuts import ShortcutsDialog, shortcut_rows

        dialog = ShortcutsDialog(shortcut_rows(self, [(title, self.page(key)) for key, title in PAGES]), self)
        dialog.setAttribute(Qt.WA_DeleteOnClose)
        dialog.open()
        self.shortcuts_dialog = dialog
        return dialog

    def import_config(self, path: Path | str | None = None, ask: bool = True):
        """File ▸ Import config…: read a LLaMA-Factory or Axolotl YAML, show what carried over, and open
        the spec in its kind's wizard. Returns that wizard (None when cancelled or refused)."""
        from PySide6.QtWidgets import QFileDialog, QMessageBox

        from engine.config_import import import_config
        from engine.errors import UserError
        from studio.widgets.import_config_dialog import ImportConfigDialog

        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Import a LLaMA-Factory or Axolotl config", str(Path.home()),
                                                  "Training configs (*.yaml *.yml);;All files (*)")
            if not path:
                return None
        try:
            imported = import_config(path)
        except UserError as e:
            QMessageBox.warning(self, "Import config", e.for_terminal())
            return None
        dialog = ImportConfigDialog(str(path), imported, self)
        self.import_dialog = dialog
        if ask and dialog.exec() != QDialog.Accepted:
            return None
        kind = imported.spec["kind"]
        if kind == "finetune":
            wizard = self.page("finetune")
            self.show_page("finetune")
        else:
            self.show_page("rlhf")
            wizard = self.page("rlhf").start(kind)
        wizard.set_spec_data({k: v for k, v in imported.spec.items() if k != "kind"})
        return wizard

    def choose_workspace(self) -> None:
        from PySide6.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Open workspace", str(self.workspace.parent))
        if folder:
            self.open_workspace(folder)

    def open_workspace(self, folder: Path | str) -> MainWindow:
        """Open `folder` as a workspace in a new window, and close this one (its runs go on; reopening
        this workspace re-attaches to them)."""
        window = MainWindow(folder)
        window.resize(self.size())
        window.show()
        self.successor = window  # kept alive by this window, which only hides on close
        self.close()
        return window

    def set_theme(self, name: str) -> None:
        from studio import theme

        theme.apply(QApplication.instance(), name)
        self._paint_icons()

    def _paint_icons(self) -> None:
        from studio import theme
        from studio.widgets.icons import workflow_icon

        t = theme.current()
        for row, (key, _) in enumerate(PAGES):
            self.sidebar.item(row).setIcon(workflow_icon(key, t.sidebar_text, t.accent_text))

    # -------------------------------------------------------------------------------- pages
    def show_page(self, key: str) -> None:
        index = PAGE_KEYS.index(key)
        if self.sidebar.currentRow() != index:
            self.sidebar.setCurrentRow(index)  # calls back into _on_sidebar_row
        else:
            self.page(key)
            self.stack.setCurrentWidget(self._holders[key])

    def current_page_key(self) -> str | None:
        widget = self.stack.currentWidget()
        if widget is self.monitor_page:
            return "monitor"
        if widget is not None and widget is self.first_run_page:
            return "first-run"
        return next((k for k, holder in self._holders.items() if holder is widget), None)

    def _on_sidebar_row(self, row: int) -> None:
        if 0 <= row < len(PAGES):
            key = PAGE_KEYS[row]
            self.page(key)
            self.stack.setCurrentWidget(self._holders[key])

    def _ensure_monitor_page(self) -> MonitorPage:
        if self.monitor_page is None:
            self.monitor_page = MonitorPage(self.store, self.tracker)
            self.monitor_page.back.connect(lambda: self.show_page("runs"))
            self.stack.addWidget(self.monitor_page)
        return self.monitor_page

    def use_dataset(self, key: str, path: str) -> None:
        """Open the wizard of page `key` (tokenizer, pretrain) with a cleaned dataset as its corpus."""
        self.show_page(key)
        page = self.page(key)
        page.show_wizard()
        page.use_dataset(path)

    def open_run(self, run_id: str) -> None:
        """Show a run: a clean run's progress and report on the Data page, a fine-tuning run's scores
        and charts on the Fine-tune page; any other run's monitor (history from the store, then live
        events)."""
        record = self.store.get_run(run_id) if self.store is not None else None
        own_page = {"clean": "data", "finetune": "finetune"}.get(record.kind if record is not None else "")
        if own_page:
            self.show_page(own_page)
            self.page(own_page).show_run(run_id)
            return
        page = self._ensure_monitor_page()
        page.monitor.clear_overlays()
        page.monitor.load(run_id)
        with_signals_blocked(self.sidebar, lambda: self.sidebar.setCurrentRow(PAGE_KEYS.index("runs")))
        self.stack.setCurrentWidget(page)

    def compare_runs(self, run_ids: list) -> None:
        """Open the first run and draw the others dimmed behind it."""
        if not run_ids:
            return
        self.open_run(run_ids[0])
        key = self.current_page_key()
        if key == "monitor":
            monitor = self.monitor_page.monitor
        elif key == "finetune":
            monitor = self.page("finetune").run_view.monitor
        else:
            return  # a clean run's report has no charts to overlay
        for other in run_ids[1:]:
            monitor.add_overlay(other)

    def _reattach(self) -> None:
        try:
            self.tracker.reattach_active()
        finally:
            self.jobs_dock.reload()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        self.jobs_dock.shutdown()  # before the tracker's engines stop: no new look at the queue
        self.tracker.shutdown()  # runs keep going; reopening the studio re-attaches
        for key in ("label", "playground"):
            if key in self.pages:
                self.pages[key].shutdown()
        for page in (self.pages.get("runs"), self.first_run_page):
            if getattr(page, "demo", None) is not None:
                page.demo.shutdown()
        super().closeEvent(event)


def with_signals_blocked(widget: QWidget, action: Callable[[], None]) -> None:
    blocked = widget.blockSignals(True)
    try:
        action()
    finally:
        widget.blockSignals(blocked)
