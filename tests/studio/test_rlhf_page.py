"""The Reward & PPO page: the chain is linked from the runs' specs, the next step is highlighted, and
each stage's wizard starts prefilled and valid."""

from __future__ import annotations

import time

import pytest
import yaml

from engine.labeling.store import LabelStore
from studio.pages.rlhf import RLHFPage, prefill
from studio.rlhf_pipeline import build_pipeline


def add_run(workspace, store, run_id: str, kind: str, spec: dict, state: str = "completed",
            metrics: list[tuple[str, str, float]] = ()) -> None:
    folder = workspace / "runs" / run_id
    folder.mkdir(parents=True)
    (folder / "spec.yaml").write_text(yaml.safe_dump({"kind": kind, "name": run_id.split("-")[0], **spec}))
    store.add_run(run_id, kind=kind, name=run_id.split("-")[0], run_dir=folder, state=state)
    events = [{"v": 1, "seq": i, "t": time.time(), "type": "metric", "step": 10 * i, "split": split,
               "values": {name: value}} for i, (split, name, value) in enumerate(metrics)]
    store.add_events(run_id, events)
    if state != "starting":
        store.set_run_state(run_id, state)


@pytest.fixture
def chain(workspace, store):
    add_run(workspace, store, "sft-1", "finetune", {"model": {"path": "base"}},
            metrics=[("eval", "exact_match", 0.2), ("eval", "exact_match", 0.9)])
    add_run(workspace, store, "other-1", "finetune", {"model": {"path": "base"}})
    labels = LabelStore(workspace / "store.db")
    labels.create_queue("reverse")
    labels.add_items("reverse", [{"prompt": f"p{i}", "candidates": ["a", f"b{i}"]} for i in range(3)])
    for _ in range(2):
        labels.add_label(labels.next_task("reverse", "checker"), "left", kind="checker")
    return labels


def test_runs_are_linked_by_their_specs_and_the_next_step_moves(workspace, store, chain):
    pipeline = build_pipeline(workspace, store, chain, "sft-1")
    assert pipeline.next_step() == "reward"
    assert pipeline.queue_for_reward() == "reverse"
    assert "exact match 20% → 90%" == pipeline.sft.headline

    add_run(workspace, store, "reward-1", "reward", {"model": {"path": "sft-1"}, "data": {"sources": ["queue:reverse"]}},
            metrics=[("eval", "pairwise_accuracy", 0.5), ("eval", "pairwise_accuracy", 0.95)])
    add_run(workspace, store, "reward-2", "reward", {"model": {"path": "other-1"}, "data": {"sources": ["x"]}})
    pipeline = build_pipeline(workspace, store, chain, "sft-1")
    assert [r.run_id for r in pipeline.reward_runs] == ["reward-1"]  # reward-2 belongs to another chain
    assert pipeline.reward_runs[0].headline == "pairwise accuracy 50% → 95%"
    assert pipeline.next_step() == "policy"

    output = str(workspace / "runs" / "sft-1" / "output" / "model")  # a folder path links as well as the id
    add_run(workspace, store, "ppo-1", "ppo", {"policy": {"path": output}, "reward_model": "reward-1"},
            metrics=[("train", "reward_mean", -0.4), ("train", "reward_mean", 0.7)])
    pipeline = build_pipeline(workspace, store, chain, "sft-1")
    assert [r.run_id for r in pipeline.policy_runs] == ["ppo-1"]
    assert pipeline.next_step() == "done"
    assert prefill("ppo", pipeline) == {"name": "ppo", "policy": {"path": "sft-1"}, "reward_model": "reward-1"}

    # A checkpoint of the SFT run links too (the demo's GRPO starts halfway); a run named alike does not.
    checkpoint = str(workspace / "runs" / "sft-1" / "checkpoints" / "checkpoint-200")
    add_run(workspace, store, "grpo-1", "grpo", {"model": {"path": checkpoint}},
            metrics=[("train", "reward_mean", 0.2), ("eval", "task_accuracy", 0.37), ("eval", "task_accuracy", 0.41)])
    add_run(workspace, store, "grpo-2", "grpo", {"model": {"path": str(workspace / "runs" / "sft-10" / "output")}})
    pipeline = build_pipeline(workspace, store, chain, "sft-1")
    assert sorted(r.run_id for r in pipeline.policy_runs) == ["grpo-1", "ppo-1"]
    # Held-out task accuracy is the headline where a run measured it; else the (noisy) train reward.
    assert {r.run_id: r.headline for r in pipeline.policy_runs} == {
        "grpo-1": "task accuracy 37% → 41%", "ppo-1": "mean reward -0.4 → 0.7"}


def test_page_highlights_the_next_stage_and_opens_prefilled_wizards(qtbot, workspace, store, chain):
    page = RLHFPage(store, None, workspace)
    qtbot.addWidget(page)
    page.sft_box.setCurrentIndex(page.sft_box.findData("sft-1"))
    assert page.cards["reward"].property("selected") is True
    assert "2 labels in 1 queue" in page.cards["labels"].status.text()
    assert not page.ppo_button.isEnabled()  # no reward model yet

    wizard = page.start("reward")
    data = wizard.spec_data()
    assert data["model"]["path"] == "sft-1" and data["data"]["sources"] == ["queue:reverse"]
    assert wizard.validate() == []
    assert page.stack.currentWidget() is page.wizards["reward"][1]

    for kind in ("dpo", "grpo"):
        assert page.start(kind).validate() == [], kind
    ppo = page.start("ppo")
    assert [str(p) for p in ppo.validate()] == ["reward_model: String should have at least 1 character"]


def test_the_recorded_demo_chain_links_as_real_runs_do(workspace, store):
    """`studio --screenshot` shows a real demo's stage 4 (resources/demo/rlhf): its specs, moved into a
    new workspace, must still link reward, PPO and GRPO to the fine-tuning run."""
    from studio.screenshots_rlhf import build_demo_rlhf_chain

    runs = build_demo_rlhf_chain(workspace, store)
    assert set(runs) == {"finetune", "reward", "ppo", "grpo"}
    pipeline = build_pipeline(workspace, store, LabelStore(workspace / "store.db"), runs["finetune"])
    assert [r.run_id for r in pipeline.reward_runs] == [runs["reward"]]
    assert {r.run_id for r in pipeline.policy_runs} == {runs["ppo"], runs["grpo"]}
    assert all(r.state == "completed" for r in [pipeline.sft, *pipeline.reward_runs, *pipeline.policy_runs])
    assert pipeline.reward_runs[0].headline.startswith("pairwise accuracy")
    assert next(r for r in pipeline.policy_runs if r.kind == "ppo").headline.startswith("task accuracy")
    spec = (workspace / "runs" / runs["ppo"] / "spec.yaml").read_text()
    assert "$WORKSPACE" not in spec and str(workspace) in spec
