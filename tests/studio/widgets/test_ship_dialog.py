"""Export… and Merge… from a run's Artifacts tab: the buttons wait for a model, the dialog starts from
the run, estimates the files' sizes from the weights on disk, writes a spec the real engine accepts,
launches it through the tracker, and the monitor then shows the new run."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.specs import SpecError
from studio.widgets.run_monitor import RunMonitor
from studio.widgets.ship_dialog import ExportWizard, weight_count
from tests.studio.tracker_fixtures import FakeTracker

@pytest.fixture
def tracker(store):
    return FakeTracker(store)


@pytest.fixture
def monitor(qtbot, store, tracker, workspace):
    from studio.client import LocalEngine

    tracker.engines["local"] = LocalEngine(workspace=workspace)  # the real engine checks what the dialog writes
    tracker.schemas.refresh("local")  # answered before the test ends (its answer goes into the store)
    qtbot.waitUntil(lambda: tracker.schemas.answered("local"), timeout=60_000)
    widget = RunMonitor(store, tracker)
    qtbot.addWidget(widget)
    return widget


def finetune_run(store, workspace: Path, checkpoints: int) -> str:
    """A completed fine-tuning run with a merged model of 1,000,000 bf16 weights on disk."""
    run_dir = workspace / "runs" / "sft-1"
    merged = run_dir / "output" / "merged"
    merged.mkdir(parents=True)
    (merged / "config.json").write_text('{"model_type": "llama", "dtype": "bfloat16"}')
    (merged / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    store.add_run("sft-1", kind="finetune", name="sft", run_dir=str(run_dir), state="completed")
    events = [{"seq": i, "type": "artifact", "kind": "checkpoint", "path": f"checkpoints/checkpoint-{i}", "meta": {}}
              for i in range(checkpoints)]
    events.append({"seq": checkpoints, "type": "artifact", "kind": "model", "path": str(merged), "meta": {}})
    store.add_events("sft-1", events)
    return "sft-1"


def test_export_starts_from_the_run_estimates_sizes_and_launches_a_spec_the_engine_accepts(
        monitor, store, tracker, workspace, qtbot):
    view = monitor.artifacts_view
    assert not view.export_button.isEnabled()  # nothing to export before a run is shown
    run_id = finetune_run(store, workspace, checkpoints=1)
    monitor.load(run_id)
    assert view.export_button.isEnabled() and view.merge_button.isEnabled()

    view.export_button.click()
    dialog = monitor.ship_dialog
    wizard = dialog.wizard
    assert isinstance(wizard, ExportWizard) and dialog.isVisible()
    spec = wizard.build_spec()
    assert spec["model"]["path"] == "sft-1" and spec["name"] == "sft-gguf"
    assert spec["quantizations"] == ["f16", "q8_0", "q4_k_m"]
    assert "About 1.0 M weights" in wizard.preview.text() and "q4_k_m ≈ 1 MiB" in wizard.preview.text()

    path = wizard.launch()  # the engine's `validate` first, then the tracker
    qtbot.waitUntil(lambda: tracker.launched == [path], timeout=60_000)
    assert tracker.engines_used == [None] and yaml.safe_load(path.read_text())["kind"] == "export"

    store.add_run("sft-gguf-1", kind="export", name="sft-gguf", state="starting")
    with qtbot.waitSignal(dialog.launched, timeout=2000):
        tracker.command.succeeded.emit({"run_id": "sft-gguf-1"})
    assert not dialog.isVisible() and monitor.run_id == "sft-gguf-1"


def test_merge_averages_a_run_with_checkpoints_and_folds_one_without(monitor, store, tracker, workspace, qtbot):
    run_id = finetune_run(store, workspace, checkpoints=3)
    monitor.load(run_id)
    averaged = monitor.open_ship_dialog("merge").wizard.build_spec()
    assert averaged["method"] == "average" and averaged["checkpoints"]["run"] == "sft-1"

    store.add_run("sft-2", kind="finetune", name="sft2", state="completed")
    store.add_events("sft-2", [{"seq": 0, "type": "artifact", "kind": "adapter", "path": "output/adapter", "meta": {}}])
    monitor.load("sft-2")
    wizard = monitor.open_ship_dialog("merge").wizard
    folded = wizard.build_spec()
    assert folded["method"] == "fold" and folded["models"][0]["path"] == "sft-2"
    path = wizard.launch()
    qtbot.waitUntil(lambda: tracker.launched == [path], timeout=60_000)

    wizard.set_spec_data({"method": "linear"})  # one model: the spec's own check names the field
    with pytest.raises(SpecError) as refused:
        wizard.build_spec()
    assert any("models: method linear takes two or more models" in p.message for p in refused.value.problems)


def test_the_size_estimate_needs_the_weights_on_this_computer(tmp_path):
    assert weight_count(tmp_path / "elsewhere") is None
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 400)
    assert weight_count(tmp_path) == 100  # float32 when the config states no dtype
