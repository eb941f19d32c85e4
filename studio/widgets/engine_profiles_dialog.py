"""Engines: this computer's engine and the SSH engine profiles, with Test connection and host keys.

Profiles are kept in the store (`studio.models.engine_profiles`). Test connection runs `doctor --json` on the
host through `ConnectionTest` (QProcess: the dialog never waits) and shows the GPUs, CUDA, versions and
free disk it reports, or why it failed. A host whose key is not in known_hosts yet shows the
fingerprints that `ssh-keyscan` read; the key is added only when the user clicks "Trust this host
key" (`ssh.accept_host_keys`), never on its own.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio.models.engine_profiles import (
    EngineProfile,
    delete_profile,
    load_profiles,
    parse_hosts,
    save_profile,
)

LOCAL_ROLE = "__local__"


def default_connection_test(profile: EngineProfile, parent: Any) -> Any:
    """A `ConnectionTest` of the profile (its `finished(ConnectionResult)` ends it)."""
    from studio.client.remote_engine import ConnectionTest
    from studio.models.engine_profiles import remote_engine

    return ConnectionTest(remote_engine(profile, parent=parent), parent=parent)


def describe_report(report: dict) -> list[str]:
    """What `doctor --json` says about a host, as lines for the user: GPUs, CUDA, versions, free disk."""
    cuda = report.get("cuda") or {}
    gpus = [d for d in report.get("devices") or [] if d.get("type") == "cuda"]
    lines = []
    if gpus:
        lines += [f"GPU {d.get('index', i)}: {d.get('name', '?')}" + (f", {d['memory_gib']} GiB" if d.get("memory_gib") else "")
                  for i, d in enumerate(gpus)]
    else:
        cpu = next((d for d in report.get("devices") or [] if d.get("type") == "cpu"), {})
        lines.append("No CUDA GPU: runs there use the CPU" + (f" ({cpu['cores']} cores)" if cpu.get("cores") else "") + ".")
    if cuda.get("available"):
        lines.append(f"CUDA {cuda.get('version')}, {cuda.get('devices')} device(s).")
    packages = report.get("packages") or {}
    versions = ", ".join(f"{name} {packages[name]}" for name in ("torch", "transformers", "peft", "trl")
                         if packages.get(name))
    lines.append(f"Engine {report.get('engine_version')} (protocol v{report.get('protocol_version')}), "
                 f"Python {report.get('python')}" + (f"; {versions}" if versions else "") + ".")
    if report.get("disk_free_gib") is not None:
        lines.append(f"{report['disk_free_gib']} GiB free for the workspace {report.get('workspace', '')}.")
    return lines


class EngineProfilesDialog(QDialog):
    """Public for tests: `profile_list`, the fields (`name_edit`, `host_edit`, `python_edit`,
    `workspace_edit`, `config_edit`), `add_button`, `save_button`, `delete_button`, `test_button`,
    `problems_label`, `result_label`, `keys_box`, `keys_label`, `trust_button`, `last_result`,
    `select(name)`. `profiles_changed()` fires after a save or a delete.

    `connection_test(profile, parent)`: makes the object that tests a profile, with a
    `finished(ConnectionResult)` signal (tests pass a stand-in)."""

    profiles_changed = Signal()

    def __init__(self, store: Any, local_python: str | None = None,
                 connection_test: Callable[[EngineProfile, Any], Any] = default_connection_test,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.store = store
        self.local_python = local_python
        self.connection_test = connection_test
        self.last_result: Any = None
        self._test: Any = None
        self._editing: str | None = None  # the saved name of the profile in the form (None: a new one)
        self.setWindowTitle("Engines")
        self.setMinimumSize(760, 520)
        self.resize(920, 720)

        self.profile_list = QListWidget()
        self.profile_list.setMinimumWidth(210)
        self.profile_list.currentItemChanged.connect(lambda item, _previous: self._show(item))
        self.add_button = QPushButton("Add SSH engine")
        self.add_button.clicked.connect(self.new_profile)
        self.delete_button = QPushButton("Delete")
        self.delete_button.clicked.connect(self.delete_current)
        left_buttons = QHBoxLayout()
        left_buttons.addWidget(self.add_button)
        left_buttons.addWidget(self.delete_button)
        left = QVBoxLayout()
        left.addWidget(self.profile_list, 1)
        left.addLayout(left_buttons)

        self.local_label = QLabel()
        self.local_label.setWordWrap(True)
        self.local_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.name_edit = QLineEdit()
        self.name_edit.setPlaceholderText("gpu lab")
        self.host_edit = QLineEdit()
        self.host_edit.setPlaceholderText("an alias from ~/.ssh/config, or me@10.0.0.5")
        self.python_edit = QLineEdit()
        self.python_edit.setPlaceholderText("~/atelier/.venv/bin/python")
        self.workspace_edit = QLineEdit()
        self.workspace_edit.setPlaceholderText("~/atelier-workspace")
        self.config_edit = QLineEdit()
        self.config_edit.setPlaceholderText("empty: ~/.ssh/config")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse_config)
        config_row = QHBoxLayout()
        config_row.addWidget(self.config_edit, 1)
        config_row.addWidget(browse)
        # A Slurm cluster's login host: runs are submitted with sbatch there (engine.slurm).
        self.slurm_check = QCheckBox("Submit runs to Slurm (this host is a cluster's login host)")
        self.partition_edit = QLineEdit()
        self.partition_edit.setPlaceholderText("empty: the cluster's default partition")
        self.account_edit = QLineEdit()
        self.account_edit.setPlaceholderText("empty: your default account")
        self.time_edit = QLineEdit()
        self.time_edit.setPlaceholderText("e.g. 12:00:00 (empty: the partition's limit)")
        self.slurm_check.toggled.connect(self._slurm_toggled)
        # A multi-node run without a scheduler: torchrun on each of these hosts, reached over SSH from the engine's host.
        self.nodes_edit = QLineEdit()
        self.nodes_edit.setPlaceholderText("empty: one machine; or e.g. gpu1, gpu2 (one per node)")
        self.nodes_edit.setToolTip("SSH aliases as the engine's host knows them (its ~/.ssh/config), user@host, or "
                                   "`local` for that host itself. Runs launched on this engine train on all of "
                                   "them: the spec gets resources.hosts and nodes.")
        self.node_config_edit = QLineEdit()
        self.node_config_edit.setPlaceholderText("on the engine's host; empty: its ~/.ssh/config")
        self.form_box = QGroupBox("SSH engine")
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.ExpandingFieldsGrow)
        form.addRow("Name", self.name_edit)
        form.addRow("Host", self.host_edit)
        form.addRow("Remote Python", self.python_edit)
        form.addRow("Remote workspace", self.workspace_edit)
        form.addRow("SSH config file", config_row)
        form.addRow("", self.slurm_check)
        form.addRow("Slurm partition", self.partition_edit)
        form.addRow("Slurm account", self.account_edit)
        form.addRow("Time limit", self.time_edit)
        form.addRow("Node hosts", self.nodes_edit)
        form.addRow("Node SSH config", self.node_config_edit)
        self._slurm_toggled(False)
        hint = QLabel("The studio runs your system's ssh with BatchMode: keys and your agent log in, a "
                      "password is never asked for or stored. `~/` is the remote home.")
        hint.setObjectName("help")
        hint.setWordWrap(True)
        box_layout = QVBoxLayout(self.form_box)
        box_layout.addLayout(form)
        box_layout.addWidget(hint)
        self.problems_label = QLabel()
        self.problems_label.setObjectName("fieldError")
        self.problems_label.setWordWrap(True)
        self.problems_label.hide()
        self.save_button = QPushButton("Save")
        self.save_button.clicked.connect(self.save_current)
        self.test_button = QPushButton("Test connection")
        self.test_button.clicked.connect(self.test_connection)
        actions = QHBoxLayout()
        actions.addWidget(self.save_button)
        actions.addWidget(self.test_button)
        actions.addStretch(1)

        self.result_label = QLabel("Test connection runs `studio-engine doctor` on the host and shows its "
                                   "GPUs, CUDA, versions and free disk.")
        self.result_label.setWordWrap(True)
        self.result_label.setTextFormat(Qt.RichText)
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.keys_label = QLabel()  # one key a line: a fingerprint is never broken
        self.keys_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.keys_label.setFont(QFontDatabase.systemFont(QFontDatabase.FixedFont))
        self.trust_button = QPushButton("Trust this host key")
        self.trust_button.clicked.connect(self.trust_host_key)
        self.keys_box = QGroupBox("Host key not known yet")
        keys_layout = QVBoxLayout(self.keys_box)
        keys_intro = QLabel("Compare these fingerprints with the ones the machine's administrator gives you "
                            "(`ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub` there) before trusting them.")
        keys_intro.setWordWrap(True)
        keys_layout.addWidget(keys_intro)
        keys_layout.addWidget(self.keys_label)
        trust_row = QHBoxLayout()
        trust_row.addWidget(self.trust_button)
        trust_row.addStretch(1)
        keys_layout.addLayout(trust_row)
        self.keys_box.hide()
        result_box = QGroupBox("Connection")
        result_layout = QVBoxLayout(result_box)
        result_layout.addWidget(self.result_label)
        result_layout.addWidget(self.keys_box)

        right = QVBoxLayout()
        right.addWidget(self.local_label)
        right.addWidget(self.form_box)
        right.addWidget(self.problems_label)
        right.addLayout(actions)
        right.addWidget(result_box)
        right.addStretch(1)
        body = QHBoxLayout()
        body.addLayout(left)
        body.addLayout(right, 1)
        close = QDialogButtonBox(QDialogButtonBox.Close)
        close.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(body, 1)
        layout.addWidget(close)
        self.reload()

    # ------------------------------------------------------------------------------ the list
    def reload(self, select: str | None = None) -> None:
        self.profile_list.blockSignals(True)
        self.profile_list.clear()
        local = QListWidgetItem("Local (this computer)")
        local.setData(Qt.UserRole, LOCAL_ROLE)
        self.profile_list.addItem(local)
        for profile in load_profiles(self.store):
            if profile.kind == "ssh":
                item = QListWidgetItem(f"{profile.name}  —  SSH {profile.host}")
                item.setData(Qt.UserRole, profile.name)
                item.setToolTip(f"{profile.host}: {profile.python}, workspace {profile.workspace}")
                self.profile_list.addItem(item)
        self.profile_list.blockSignals(False)
        self.select(select)

    def profile_names(self) -> list[str]:
        return [self.profile_list.item(i).data(Qt.UserRole) for i in range(1, self.profile_list.count())]

    def select(self, name: str | None) -> None:
        """Show the SSH profile `name` (None or unknown: the local engine)."""
        row = next((i for i in range(self.profile_list.count())
                    if self.profile_list.item(i).data(Qt.UserRole) == name), 0)
        self.profile_list.setCurrentRow(row)
        self._show(self.profile_list.item(row))

    def _show(self, item: QListWidgetItem | None) -> None:
        key = item.data(Qt.UserRole) if item is not None else LOCAL_ROLE
        self._clear_result()
        self.problems_label.hide()
        if key == LOCAL_ROLE:
            self._editing = None
            self.local_label.setText(
                f"This computer's engine runs with {self.local_python or 'the Python found at start'} "
                "(chosen on the first-run screen). Add an SSH engine to run on a machine with GPUs.")
            self._fill(EngineProfile(""))
            self._set_form_visible(False)
            return
        profile = next((p for p in load_profiles(self.store) if p.name == key), None)
        self._editing = key
        self._fill(profile or EngineProfile(key))
        self._set_form_visible(True)

    def _set_form_visible(self, on: bool) -> None:
        self.local_label.setVisible(not on)
        self.form_box.setVisible(on)
        for button in (self.save_button, self.test_button):
            button.setVisible(on)
        self.delete_button.setEnabled(on and self._editing is not None)

    def _fill(self, profile: EngineProfile) -> None:
        self.name_edit.setText(profile.name)
        self.host_edit.setText(profile.host)
        self.python_edit.setText(profile.python)
        self.workspace_edit.setText(profile.workspace)
        self.config_edit.setText(profile.ssh_config)
        self.slurm_check.setChecked(profile.scheduler == "slurm")
        self.partition_edit.setText(profile.partition)
        self.account_edit.setText(profile.account)
        self.time_edit.setText(profile.time_limit)
        self.nodes_edit.setText(", ".join(profile.node_hosts))
        self.node_config_edit.setText(profile.node_ssh_config)

    def _slurm_toggled(self, on: bool) -> None:
        for edit in (self.partition_edit, self.account_edit, self.time_edit):
            edit.setEnabled(on)
        for edit in (self.nodes_edit, self.node_config_edit):  # Slurm picks the nodes of its jobs
            edit.setEnabled(not on)

    def form_profile(self) -> EngineProfile:
        slurm = self.slurm_check.isChecked()
        return EngineProfile(self.name_edit.text().strip(), kind="ssh", host=self.host_edit.text().strip(),
                             python=self.python_edit.text().strip(), workspace=self.workspace_edit.text().strip(),
                             ssh_config=self.config_edit.text().strip(), scheduler="slurm" if slurm else "",
                             partition=self.partition_edit.text().strip() if slurm else "",
                             account=self.account_edit.text().strip() if slurm else "",
                             time_limit=self.time_edit.text().strip() if slurm else "",
                             node_hosts=() if slurm else parse_hosts(self.nodes_edit.text()),
                             node_ssh_config="" if slurm else self.node_config_edit.text().strip())

    # ---------------------------------------------------------------------------- actions
    def new_profile(self) -> None:
        """An empty SSH profile in the form (saved with Save)."""
        self.profile_list.blockSignals(True)
        self.profile_list.setCurrentRow(-1)
        self.profile_list.blockSignals(False)
        self._editing = None
        self._clear_result()
        self.problems_label.hide()
        self._fill(EngineProfile("", python="~/atelier/.venv/bin/python", workspace="~/atelier-workspace"))
        self._set_form_visible(True)
        self.name_edit.setFocus()

    def save_current(self) -> bool:
        profile = self.form_profile()
        problems = profile.problems()
        taken = [n for n in self.profile_names() if n == profile.name and n != self._editing]
        if taken:
            problems.append(f"There is already an engine named {profile.name}.")
        if problems:
            self.problems_label.setText("\n".join(problems))
            self.problems_label.show()
            return False
        self.problems_label.hide()
        save_profile(self.store, profile, replace=self._editing)
        self.reload(select=profile.name)
        self.profiles_changed.emit()
        return True

    def delete_current(self) -> None:
        if self._editing is None:
            return
        delete_profile(self.store, self._editing)
        self.reload()
        self.profiles_changed.emit()

    def _browse_config(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "SSH config file", str(Path.home() / ".ssh"))
        if path:
            self.config_edit.setText(path)

    # --------------------------------------------------------------------- test connection
    def test_connection(self) -> None:
        """Run the test of the profile in the form (saved or not) without waiting for it."""
        profile = self.form_profile()
        problems = [p for p in profile.problems() if not p.startswith("The name")]
        if problems:
            self.problems_label.setText("\n".join(problems))
            self.problems_label.show()
            return
        self.problems_label.hide()
        self._clear_result()
        self.result_label.setText(f"Testing {html.escape(profile.host)}…")
        self.test_button.setEnabled(False)
        self._test = self.connection_test(profile, self)
        self._test.finished.connect(self._tested)

    def _tested(self, result: Any) -> None:
        self.test_button.setEnabled(True)
        self.last_result = result
        if result.ok:
            lines = [f"<b>✓ {html.escape(result.message)}</b>"]
            lines += [html.escape(line) for line in describe_report(result.report or {})]
            lines += [f"<span style='color:#b26b00'>{html.escape(w).replace(chr(10), '<br>')}</span>"
                      for w in result.warnings]
        else:
            lines = ["<b>✗ Not connected.</b>"] + [html.escape(line) for line in result.message.splitlines()]
        self.result_label.setText("<br>".join(lines))
        if not result.ok and result.host_keys:
            self.keys_label.setText("\n".join(f"{k.key_type}  {k.fingerprint}" for k in result.host_keys))
            self.keys_box.setTitle(f"Host key not known yet (it would go to {result.known_hosts})")
            self.keys_box.show()

    def trust_host_key(self) -> None:
        """The user checked the fingerprints: add the keys to known_hosts, then test again."""
        from studio.client.ssh import accept_host_keys

        result = self.last_result
        if result is None or not result.host_keys or result.known_hosts is None:
            return
        accept_host_keys(result.host_keys, result.known_hosts)
        self.test_connection()

    def _clear_result(self) -> None:
        self.last_result = None
        self.keys_box.hide()
        self.keys_label.setText("")
        self.result_label.setText("Test connection runs `studio-engine doctor` on the host and shows its "
                                  "GPUs, CUDA, versions and free disk.")
