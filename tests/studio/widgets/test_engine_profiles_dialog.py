"""The Engines dialog: SSH profiles added, edited and deleted in the store; Test connection with a
stand-in for the ssh process; an unknown host key shown with its fingerprint and trusted only on click."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal

from engine import __version__
from engine.protocol import PROTOCOL_VERSION
from studio.client.remote_engine import ConnectionResult
from studio.client.ssh import HostKey
from studio.models.engine_profiles import load_profiles
from studio.widgets.engine_profiles_dialog import EngineProfilesDialog

KEY = HostKey("[127.0.0.1]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIhr8ww4UasWB0VDTXD3fAHq1vmrVRRJfmlbnDdrDTgP")
REPORT = {"engine_version": __version__, "protocol_version": PROTOCOL_VERSION, "python": "3.11.7", "host": "gpu-box",
          "cuda": {"available": True, "version": "12.4", "devices": 2},
          "devices": [{"type": "cuda", "index": 0, "name": "NVIDIA H100", "memory_gib": 79.6},
                      {"type": "cuda", "index": 1, "name": "NVIDIA H100", "memory_gib": 79.6},
                      {"type": "cpu", "name": "x86_64", "cores": 64}],
          "packages": {"torch": "2.5.1", "transformers": "4.46.0"}, "workspace": "/home/me/ws", "disk_free_gib": 812.5}


class FakeTest(QObject):
    """Stands for `ConnectionTest`: answers `result` on the next turn of the event loop."""

    finished = Signal(object)

    def __init__(self, result: ConnectionResult, parent=None):
        super().__init__(parent)
        QTimer.singleShot(0, self, lambda: self.finished.emit(result))


class Answers:
    def __init__(self, *results: ConnectionResult):
        self.results = list(results)
        self.profiles = []

    def __call__(self, profile, parent):
        self.profiles.append(profile)
        return FakeTest(self.results.pop(0), parent)


def _fill(dialog, name="lab box", host="gpu-lab", python="~/v/bin/python", workspace="~/ws", config=""):
    dialog.name_edit.setText(name)
    dialog.host_edit.setText(host)
    dialog.python_edit.setText(python)
    dialog.workspace_edit.setText(workspace)
    dialog.config_edit.setText(config)


def test_ssh_profiles_are_added_edited_and_deleted_in_the_store(qtbot, store):
    dialog = EngineProfilesDialog(store, local_python="/usr/bin/python3")
    qtbot.addWidget(dialog)
    assert dialog.profile_names() == [] and "/usr/bin/python3" in dialog.local_label.text()
    assert not dialog.form_box.isVisibleTo(dialog) and not dialog.delete_button.isEnabled()
    changed = []
    dialog.profiles_changed.connect(lambda: changed.append(1))

    dialog.add_button.click()
    _fill(dialog, host="-oProxyCommand=evil", python="", workspace="")
    assert not dialog.save_current()
    assert "host must be" in dialog.problems_label.text() and load_profiles(store) == [] and changed == []

    _fill(dialog, config="/home/me/my ssh config")
    dialog.save_button.click()
    assert [(p.name, p.host, p.ssh_config) for p in load_profiles(store)] == [("lab box", "gpu-lab", "/home/me/my ssh config")]
    assert dialog.profile_names() == ["lab box"] and dialog.profile_list.currentItem().text().startswith("lab box")

    dialog.add_button.click()
    _fill(dialog, name="lab box", host="other")
    assert not dialog.save_current() and "already an engine named lab box" in dialog.problems_label.text()

    dialog.select("lab box")
    dialog.name_edit.setText("lab")
    dialog.host_edit.setText("gpu-lab2")
    dialog.save_button.click()
    assert [(p.name, p.host) for p in load_profiles(store)] == [("lab", "gpu-lab2")]  # edited, not added

    dialog.delete_button.click()
    assert load_profiles(store) == [] and dialog.profile_names() == [] and len(changed) == 3


def test_a_slurm_login_host_keeps_its_partition_account_and_time_limit(qtbot, store):
    dialog = EngineProfilesDialog(store, local_python="/usr/bin/python3")
    qtbot.addWidget(dialog)
    dialog.add_button.click()
    _fill(dialog, name="cluster", host="login.hpc")
    assert not dialog.partition_edit.isEnabled()
    dialog.slurm_check.setChecked(True)
    dialog.partition_edit.setText("gpu")
    dialog.account_edit.setText("lab")
    dialog.time_edit.setText("half a day")
    assert not dialog.save_current() and "time limit" in dialog.problems_label.text()
    dialog.time_edit.setText("12:00:00")
    assert dialog.save_current()
    saved = load_profiles(store)[0]
    assert (saved.scheduler, saved.partition, saved.account, saved.time_limit) == ("slurm", "gpu", "lab", "12:00:00")
    dialog.select("cluster")
    assert dialog.slurm_check.isChecked() and dialog.time_edit.text() == "12:00:00"


def test_a_test_connection_shows_the_gpus_cuda_versions_and_free_disk(qtbot, store):
    answers = Answers(ConnectionResult(True, "Connected to gpu-box: engine 0.1.0.", REPORT,
                                       warnings=["The engine on gpu-lab is version 0.0.9."]),
                      ConnectionResult(False, "Could not test the engine: gpu-lab refused the login (Permission denied)."))
    dialog = EngineProfilesDialog(store, connection_test=answers)
    qtbot.addWidget(dialog)
    dialog.add_button.click()
    _fill(dialog)
    dialog.test_button.click()
    assert not dialog.test_button.isEnabled() and "Testing gpu-lab" in dialog.result_label.text()
    qtbot.waitUntil(lambda: dialog.last_result is not None, timeout=5000)
    text = dialog.result_label.text()
    for expected in ("GPU 0: NVIDIA H100, 79.6 GiB", "GPU 1", "CUDA 12.4", "torch 2.5.1", "812.5 GiB free", "0.0.9"):
        assert expected in text, expected
    assert answers.profiles[0].host == "gpu-lab" and load_profiles(store) == []  # tested without saving
    assert dialog.test_button.isEnabled() and not dialog.keys_box.isVisibleTo(dialog)

    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.last_result is not None, timeout=5000)
    assert "Not connected" in dialog.result_label.text() and "Permission denied" in dialog.result_label.text()
    assert not dialog.keys_box.isVisibleTo(dialog)


def test_an_unknown_host_key_is_shown_with_its_fingerprint_and_trusted_only_on_click(qtbot, store, tmp_path):
    known_hosts = tmp_path / "ssh" / "known_hosts"
    answers = Answers(ConnectionResult(False, "gpu-lab is not in your known_hosts yet.", host_keys=[KEY],
                                       known_hosts=known_hosts),
                      ConnectionResult(True, "Connected to gpu-box.", REPORT))
    dialog = EngineProfilesDialog(store, connection_test=answers)
    qtbot.addWidget(dialog)
    dialog.add_button.click()
    _fill(dialog)
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.last_result is not None, timeout=5000)
    assert dialog.keys_box.isVisibleTo(dialog) and KEY.fingerprint in dialog.keys_label.text()
    assert KEY.fingerprint.startswith("SHA256:") and str(known_hosts) in dialog.keys_box.title()
    assert not known_hosts.exists()  # shown, not accepted

    dialog.trust_button.click()
    assert known_hosts.read_text() == KEY.line + "\n"
    qtbot.waitUntil(lambda: dialog.last_result is not None and dialog.last_result.ok, timeout=5000)
    assert len(answers.profiles) == 2 and not dialog.keys_box.isVisibleTo(dialog)  # tested again after trusting
    assert "NVIDIA H100" in dialog.result_label.text()


def test_the_dialog_is_readable_at_its_size(qtbot, store, tmp_path):
    answers = Answers(ConnectionResult(False, "gpu-lab is not in your known_hosts yet.", host_keys=[KEY],
                                       known_hosts=Path("/home/me/.ssh/known_hosts")))
    dialog = EngineProfilesDialog(store, connection_test=answers)
    qtbot.addWidget(dialog)
    dialog.add_button.click()
    _fill(dialog)
    dialog.save_button.click()
    dialog.test_button.click()
    qtbot.waitUntil(lambda: dialog.last_result is not None, timeout=5000)
    dialog.show()
    qtbot.waitExposed(dialog)
    assert dialog.trust_button.isVisible() and dialog.trust_button.width() >= dialog.trust_button.sizeHint().width()
    assert dialog.grab().save(str(tmp_path / "engines.png"))


def test_node_hosts_of_a_multi_node_engine_are_checked_saved_and_shown_again(qtbot, store):
    dialog = EngineProfilesDialog(store, local_python="/usr/bin/python3")
    qtbot.addWidget(dialog)
    dialog.add_button.click()
    _fill(dialog, name="pair", host="gpu-a")
    dialog.nodes_edit.setText("gpu-a")
    assert not dialog.save_current() and "two node hosts or more" in dialog.problems_label.text()
    dialog.nodes_edit.setText("gpu-a, -oProxyCommand=x")
    assert not dialog.save_current() and "Node host 2 ('-oProxyCommand=x')" in dialog.problems_label.text()
    dialog.nodes_edit.setText("gpu-a,\ngpu-b  me@10.0.0.7")
    dialog.node_config_edit.setText("~/.ssh/cluster_config")
    assert dialog.save_current(), dialog.problems_label.text()
    saved = load_profiles(store)[0]
    assert saved.node_hosts == ("gpu-a", "gpu-b", "me@10.0.0.7") and saved.node_ssh_config == "~/.ssh/cluster_config"
    dialog.select("pair")
    assert dialog.nodes_edit.text() == "gpu-a, gpu-b, me@10.0.0.7"
    dialog.slurm_check.setChecked(True)  # Slurm chooses the nodes itself
    assert not dialog.nodes_edit.isEnabled()
    assert dialog.save_current() and load_profiles(store)[0].node_hosts == ()
