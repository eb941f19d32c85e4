"""A workspace moved to another folder keeps every link: a real engine run stores the files of its
workspace relative to it, a demo chain (the recorded one, one of its runs written the old way, with
absolute paths) still links on the Reward & PPO page, the monitor's artifacts point into the new
place, and `studio-engine show` answers with the new paths."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from engine.protocol import read_events
from studio.models.store import Store
from tests.e2e.test_studio_clean import prose
from tests.engine.conftest import Engine
from tools.screenshots.rlhf import build_demo_rlhf_chain

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread_engines")]


def clean_run(engine: Engine) -> str:
    """A real clean run of a small corpus inside the workspace, named by its absolute path."""
    import random

    rng = random.Random(1)
    corpus = engine.workspace / "inputs" / "corpus.jsonl"
    corpus.parent.mkdir()
    corpus.write_text("".join(json.dumps({"text": prose(rng)}) + "\n" for _ in range(20)), encoding="utf-8")
    spec = engine.write_spec({"kind": "clean", "name": "moved-clean", "input": {"sources": [str(corpus)]},
                              "workers": 1})
    result = engine.run("run", str(spec), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = engine.only_run()
    stored = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8"))
    assert stored["input"]["sources"] == ["inputs/corpus.jsonl"]  # relative to the workspace
    events = list(read_events(run_dir / "events.jsonl"))
    artifacts = [e for e in events if e["type"] == "artifact"]
    assert artifacts and all(e["path"].startswith(f"runs/{run_dir.name}/") for e in artifacts)
    assert events[0]["spec"]["input"]["sources"] == ["inputs/corpus.jsonl"]
    assert str(engine.workspace) not in json.dumps([e for e in events if e["type"] != "log"])  # logs are prose
    return run_dir.name


def as_written_before(workspace, store: Store, run_id: str) -> None:
    """Rewrite a run the way runs were written before: absolute paths in its spec, its events and the store."""
    spec = workspace / "runs" / run_id / "spec.yaml"
    spec.write_text(spec.read_text(encoding="utf-8").replace(": runs/", f": {workspace}/runs/"), encoding="utf-8")
    events = workspace / "runs" / run_id / "events.jsonl"
    events.write_text(events.read_text(encoding="utf-8").replace('"runs/', f'"{workspace}/runs/'), encoding="utf-8")
    with store.conn:
        store.conn.execute("UPDATE events SET json = replace(json, '\"runs/', ?) WHERE run_id = ?",
                           (f'"{workspace}/runs/', run_id))
        store.conn.execute("UPDATE runs SET run_dir = ? WHERE run_id = ?", (str(workspace / "runs" / run_id), run_id))


def test_a_moved_workspace_keeps_its_chain_artifacts_and_outputs(qtbot, tmp_path):
    from studio.main_window import MainWindow, default_tracker

    old = tmp_path / "old" / "ws"
    old.mkdir(parents=True)
    engine = Engine(old)
    clean_id = clean_run(engine)
    store = Store(old / "store.db")
    store.add_run(clean_id, kind="clean", run_dir=old / "runs" / clean_id)
    store.add_events(clean_id, read_events(old / "runs" / clean_id / "events.jsonl"))
    chain = build_demo_rlhf_chain(old, store)
    for run_id in chain.values():  # the chain's outputs, as its runs left them
        for event in store.events(run_id, "artifact"):
            assert event["path"].startswith("runs/"), event["path"]  # written relative to the workspace
            (old / event["path"]).mkdir(parents=True, exist_ok=True)
    as_written_before(old, store, chain["grpo"])
    assert store.get_run(chain["grpo"]).run_dir == str(old / "runs" / chain["grpo"])
    store.close()

    new = tmp_path / "elsewhere" / "copy"
    shutil.move(str(old), str(new))
    store = Store(new / "store.db")
    window = MainWindow(new, store=store, tracker=default_tracker(store, new), reattach=False)
    qtbot.addWidget(window)
    try:
        assert store.get_run(clean_id).run_dir == str(new / "runs" / clean_id)
        assert store.get_run(chain["grpo"]).run_dir == str(new / "runs" / chain["grpo"])  # written before: moved too

        page = window.page("rlhf")
        page.sft_box.setCurrentIndex(page.sft_box.findData(chain["finetune"]))
        pipeline = page.pipeline
        assert [r.run_id for r in pipeline.reward_runs] == [chain["reward"]]
        assert {r.run_id for r in pipeline.policy_runs} == {chain["ppo"], chain["grpo"]}
        assert len(pipeline.queues) == 1 and pipeline.next_step() == "done"
        assert "No reward model yet" not in page.cards["reward"].status.text()

        for kind in ("ppo", "grpo", "reward"):
            window.open_run(chain[kind])
            paths = window.monitor_page.monitor.artifacts_view.paths()
            assert paths and all(p.startswith(str(new / "runs")) for p in paths), (kind, paths)
            assert all((new / p).exists() for p in paths), kind

        window.open_run(clean_id)
        run_view = window.page("data").run_view
        assert run_view.dataset_path() == new / "runs" / clean_id / "output" / "dataset"
        assert run_view.dataset_path().is_dir()
    finally:
        window.close()
        store.close()

    moved = Engine(new)
    shown = moved.run("show", clean_id)
    assert shown.returncode == 0, shown.stderr
    assert f"Folder: {new / 'runs' / clean_id}" in shown.stdout
    assert f"Cleaned dataset: {new / 'runs' / clean_id / 'output' / 'dataset'}" in shown.stdout
    for kind in ("ppo", "grpo"):
        summary = json.loads(moved.run("show", chain[kind], "--json").stdout)["finished"]["summary"]
        assert summary["policy"] == str(new / "runs" / chain[kind] / "output" / "policy"), kind
    assert str(old) not in moved.run("show", chain["ppo"]).stdout
