"""A remote engine over real SSH: an `sshd` on 127.0.0.1 with its own host key, user key, config and
known_hosts in a temporary folder (nothing of the user's is read or written). The studio side runs
the system `ssh` with `-F` that config; the "remote" engine is this checkout's Python."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import yaml

from engine.protocol import read_events
from studio.client import LocalEngine
from studio.client.remote_engine import ConnectionTest
from studio.client.ssh import accept_host_keys
from studio.models.engine_profiles import (
    EngineProfile,
    get_profile,
    remote_engine,
    save_profile,
)
from studio.client.run_tracker import RunTracker
from studio.models.store import Store
from tests.sshd_fixtures import Sshd, needs_sshd, sshd  # noqa: F401 (sshd is a fixture)

pytestmark = needs_sshd


def _distinct_corpus(path: Path, documents: int) -> Path:
    """Documents that cleaning keeps (no duplicates, long enough), so the run lasts a few seconds."""
    import random
    rng = random.Random(5)
    vocabulary = [f"{a}{b}" for a in ("ka", "lo", "mi", "nu", "pe", "ro", "su", "ti") for b in
                  ("ban", "cor", "dil", "fen", "gat", "hum", "jor", "kel", "lim", "mon")]
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps({"text": " ".join(rng.choice(vocabulary) for _ in range(60)) + "."}) + "\n" for _ in range(documents))
    return path


def _wait(qtbot, condition, timeout_s: float, what: str) -> None:
    qtbot.waitUntil(condition, timeout=int(timeout_s * 1000))


def _master_pid(sshd: Sshd) -> int | None:
    done = subprocess.run(["ssh", "-F", str(sshd.config), "-o", f"ControlPath={sshd.control_dir}/%C",
                           "-O", "check", sshd.host], check=False, capture_output=True, text=True, timeout=10)
    found = re.search(r"pid=(\d+)", done.stderr)
    return int(found.group(1)) if found else None


def test_a_remote_run_survives_a_dropped_connection_with_no_gap_and_no_duplicate(qtbot, tmp_path, sshd):
    weird = tmp_path / "remote ws 'q' $HOME; x"
    store = Store(tmp_path / "store.db")
    save_profile(store, EngineProfile("lab box", host=sshd.host, python=sys.executable, workspace=str(weird),
                                      ssh_config=str(sshd.config)))
    remote = remote_engine(get_profile(store, "lab box"), control_dir=str(sshd.control_dir))
    remote.extra_env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}

    # 1. The host is unknown: the test fails, shows the key, and known_hosts is left untouched.
    check = ConnectionTest(remote)
    with qtbot.waitSignal(check.finished, timeout=20000):
        pass
    result = check.result
    assert not result.ok and "not in your known_hosts" in result.message, result.message
    assert result.host_keys and result.host_keys[0].fingerprint.startswith("SHA256:")
    assert result.known_hosts == sshd.known_hosts and not sshd.known_hosts.exists()
    accept_host_keys(result.host_keys, result.known_hosts)  # the user accepted the fingerprint
    check = ConnectionTest(remote)
    with qtbot.waitSignal(check.finished, timeout=30000):
        pass
    assert check.result.ok, check.result.message
    assert check.result.report["protocol_version"] >= 1 and check.result.warnings == []

    # 2. A run launched over SSH, from a spec whose path and name carry spaces, quotes, `$` and `;`.
    corpus = _distinct_corpus(tmp_path / "corpus; $HOME 'x'.jsonl", documents=60000)
    spec_dir = tmp_path / "specs $(touch pwned); 'a'"
    spec_dir.mkdir()
    spec_path = spec_dir / "clean run; $USER 'x'.yaml"
    spec_path.write_text(yaml.safe_dump({"kind": "clean", "name": "remote-clean", "input": {"sources": [str(corpus)]},
                                         "workers": 1, "batch_documents": 100}))
    tracker = RunTracker(store, LocalEngine(workspace=tmp_path / "local"))
    tracker.add_engine(remote)
    seen: list[dict] = []
    states: list[str] = []
    errors: list[str] = []
    tracker.run_events.connect(lambda run_id, events: seen.extend(events))
    tracker.run_state_changed.connect(lambda run_id, state: states.append(state))
    tracker.run_error.connect(lambda run_id, message: errors.append(message))
    tracker.launch_failed.connect(errors.append)
    try:
        launch = tracker.launch(spec_path, engine="lab box")
        with qtbot.waitSignal(launch.done, timeout=30000):
            pass
        assert launch.error is None, launch.error
        run_id = launch.result["run_id"]
        run_dir = Path(launch.result["run_dir"])
        assert run_dir.parent.parent == weird
        # The spec sent names the copy of the local corpus in the remote workspace's inputs/.
        sent = yaml.safe_load((weird / "specs" / spec_path.name).read_text())
        copy = Path(sent["input"]["sources"][0])
        assert copy.parent.parent == weird / "inputs" and copy.read_bytes() == corpus.read_bytes()
        assert sent == {**yaml.safe_load(spec_path.read_text()), "input": {"sources": [str(copy)]}}
        assert store.get_run(run_id).engine == "lab box"

        # 3. Mid-run, the connection dies (the multiplexing master is killed): the tracker re-attaches.
        _wait(qtbot, lambda: any(e["type"] == "progress" for e in seen), 60, "first progress")
        first_stream = tracker._streams[run_id]
        master = _master_pid(sshd)
        assert master is not None
        os.kill(master, signal.SIGKILL)
        _wait(qtbot, lambda: tracker._streams.get(run_id) not in (None, first_stream), 15, "re-attach")
        count = len(seen)
        _wait(qtbot, lambda: len(seen) > count, 30, "events after re-attach")
        assert _master_pid(sshd) not in (None, master)

        # 4. Cancel over SSH: the run stops between batches and ends as cancelled.
        assert store.get_run(run_id).state == "running"
        cancel = tracker.cancel(run_id)
        with qtbot.waitSignal(cancel.done, timeout=30000):
            pass
        assert cancel.error is None, cancel.error
        _wait(qtbot, lambda: store.get_run(run_id).state == "cancelled", 60, "cancelled")
        _wait(qtbot, lambda: not tracker.is_attached(run_id), 15, "attach ends")

        # 5. Resume over SSH: the same run id, its events continue the same seq; then a forced cancel.
        count = len(seen)
        resume = tracker.resume(run_id)
        with qtbot.waitSignal(resume.done, timeout=30000):
            pass
        assert resume.error is None, resume.error
        _wait(qtbot, lambda: any(e["type"] == "progress" for e in seen[count:]), 60, "progress after resume")
        force = tracker.cancel(run_id, force=True)
        with qtbot.waitSignal(force.done, timeout=30000):
            pass
        assert force.error is None, force.error
        _wait(qtbot, lambda: store.get_run(run_id).state == "cancelled" and not tracker.is_attached(run_id),
              60, "cancelled again")
    finally:
        tracker.shutdown()

    remote_events = list(read_events(run_dir / "events.jsonl"))
    assert [e["seq"] for e in seen] == list(range(len(remote_events)))  # no gap, no duplicate
    assert seen == remote_events
    assert remote_events[-1]["type"] == "finished" and errors == []
    assert [e["status"] for e in remote_events if e["type"] == "finished"] == ["cancelled", "cancelled"]
    assert states.count("running") == 2 and states[-1] == "cancelled"
    assert not list(tmp_path.rglob("pwned")) and not (Path.home() / "pwned").exists()
    store.close()


def _trust(sshd: Sshd) -> None:
    """Accept the test server's key (the user's click on "Trust this host key")."""
    from studio.client.ssh import SshTarget, parse_keyscan, resolve

    resolved = resolve(SshTarget(sshd.host, config_file=str(sshd.config)))
    scan = subprocess.run(["ssh-keyscan", "-T", "10", "-p", str(resolved.port), resolved.hostname],
                          check=True, capture_output=True, text=True, timeout=20)
    accept_host_keys(parse_keyscan(scan.stdout), resolved.known_hosts)


def test_local_inputs_are_copied_once_the_run_completes_remotely_and_outputs_come_back(qtbot, tmp_path, sshd):
    from studio.client.transfers import InputSync, OutputPull, RemoteOutputs

    _trust(sshd)
    workspace = tmp_path / "remote-ws"
    store = Store(tmp_path / "store.db")
    save_profile(store, EngineProfile("lab", host=sshd.host, python=sys.executable, workspace=str(workspace),
                                      ssh_config=str(sshd.config)))
    remote = remote_engine(get_profile(store, "lab"), control_dir=str(sshd.control_dir))
    remote.extra_env = {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    corpus = _distinct_corpus(tmp_path / "my corpus; $HOME 'x' \"q\" `id`.jsonl", documents=300)
    spec_path = tmp_path / "clean.yaml"
    # (quality off: the documents are numbered words with no stop words, which its rules would remove)
    spec_path.write_text(yaml.safe_dump({"kind": "clean", "name": "synced", "input": {"sources": [str(corpus)]},
                                         "workers": 1, "quality": {"enabled": False}}))
    tracker = RunTracker(store, LocalEngine(workspace=tmp_path / "local"))
    tracker.add_engine(remote)
    launches = []
    try:
        for _ in range(2):
            launch = tracker.launch(spec_path, engine="lab")
            with qtbot.waitSignal(launch.done, timeout=30000):
                pass
            assert launch.error is None, launch.error
            launches.append(launch)
            _wait(qtbot, lambda run_id=launch.result["run_id"]: store.get_run(run_id).state == "completed", 60,
                  "completed")
    finally:
        tracker.shutdown()

    first, second = launches
    assert [u.local for u in first.sync.copied] == [corpus] and second.sync.copied == []  # copied once
    remote_copy = Path(first.sync.remote_paths[str(corpus)])
    assert remote_copy.parent.parent == workspace / "inputs" and remote_copy.name == corpus.name
    assert remote_copy.read_bytes() == corpus.read_bytes()
    assert not (workspace / "inputs" / ".incoming").exists()
    run_dir = Path(second.result["run_dir"])
    # The run's spec names the copy relative to the host's workspace (where the engine reads it back).
    assert yaml.safe_load((run_dir / "spec.yaml").read_text())["input"]["sources"] == [
        remote_copy.relative_to(workspace).as_posix()]
    assert yaml.safe_load(spec_path.read_text())["input"]["sources"] == [str(corpus)]  # the local spec is unchanged

    # The outputs, listed on the host and pulled back (a file with rsync when there is one, a folder with scp).
    listing = RemoteOutputs(remote, str(run_dir / "output"))
    with qtbot.waitSignal(listing.finished, timeout=20000):
        pass
    entries = {e.name: e for e in listing.entries}
    assert "report.json" in entries and entries["report.json"].bytes > 0
    pulled = tmp_path / "pulled" / "report.json"
    pull = OutputPull(remote, entries["report.json"].path, pulled)
    with qtbot.waitSignal(pull.finished, timeout=20000):
        pass
    assert pull.error is None, pull.error
    assert pulled.read_bytes() == (run_dir / "output" / "report.json").read_bytes()
    folder = next(e for e in listing.entries if e.is_dir)
    pull = OutputPull(remote, folder.path, tmp_path / "pulled" / folder.name, allow_rsync=False)
    with qtbot.waitSignal(pull.finished, timeout=20000):
        pass
    assert pull.error is None and pull.tool == "scp", pull.error
    assert sorted(p.name for p in (tmp_path / "pulled" / folder.name).rglob("*")) == \
        sorted(p.name for p in Path(folder.path).rglob("*"))

    # A folder goes up with scp too, into a workspace whose path needs quoting (staged in the home).
    data = tmp_path / "data dir; 'x'"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "a $b.txt").write_text("a")
    remote.workspace = str(tmp_path / "ws $x; 'q'")
    sync = InputSync(remote, {"sources": [str(data)]}, allow_rsync=False)
    sync.start()
    with qtbot.waitSignal(sync.finished, timeout=20000):
        pass
    assert sync.error is None and sync.tool == "scp", sync.error
    assert (Path(sync.remote_paths[str(data)]) / "sub" / "a $b.txt").read_text() == "a"
    assert not list(tmp_path.rglob("pwned")) and not (Path.home() / ".atelier-incoming").exists()
    store.close()
