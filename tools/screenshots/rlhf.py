"""The Reward & PPO page and the RLHF charts for the screenshots, from a recorded real chain.

`resources/demo/rlhf/` holds the specs and event streams of one real `studio-engine demo` stage 4 —
the fine-tuning run, the reward run, PPO and GRPO — with the workspace written as `$WORKSPACE`
(heartbeats dropped, seq renumbered). `build_demo_rlhf_chain` puts them into the
screenshot workspace so that the page links them as it links real runs (by the paths their specs
name), written relative to the workspace as the engine writes them. The recording has no label
queue: the chain's queue (the one the reward run names) is made here from generated reversal tasks,
a right and a near-miss answer each, "answered" by the fine-tuning run's checkpoint the demo
labels from and labeled by the task's checker — NOT the demo's real answers.
`python -m tools.screenshots.rlhf record WORKSPACE` records a new chain from a demo's workspace.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import yaml

from engine.kinds import KINDS
from engine.labeling.checker_labels import label_by_checker
from engine.labeling.store import LabelStore
from engine.protocol import read_events
from engine.tasks.generators import generate
from tools.screenshots.label import near_miss

RECORDED_CHAIN = Path(__file__).resolve().parents[2] / "resources" / "demo" / "rlhf"
# The stages of the chain recorded: the fine-tuned model, its reward models and the policy runs.
CHAIN_STAGES = ("sft", "reward", "policy")
DEMO_PREFIX = "demo-reverse-"  # the demo's RLHF runs (stage 4) and the fine-tuning run they start from
PLACEHOLDER = "$WORKSPACE"
DROPPED = {"heartbeat"}


def build_demo_rlhf_chain(workspace: Path, store) -> dict[str, str]:
    """The recorded chain's runs in `workspace` and `store`; returns {kind: run id} ({} without a recording)."""
    runs: dict[str, str] = {}
    folders = [f for f in sorted(RECORDED_CHAIN.glob("*")) if (f / "events.jsonl").exists()] \
        if RECORDED_CHAIN.is_dir() else []
    for folder in folders:  # one folder per recorded kind
        kind = folder.name
        text = (folder / "events.jsonl").read_text(encoding="utf-8").replace(PLACEHOLDER + "/", "")
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        started = next(e for e in events if e.get("type") == "started")
        run_id = started["run_id"]
        run_dir = workspace / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = (folder / "spec.yaml").read_text(encoding="utf-8").replace(PLACEHOLDER + "/", "")
        (run_dir / "spec.yaml").write_text(spec, encoding="utf-8")
        (run_dir / "events.jsonl").write_text(text, encoding="utf-8")
        if store.get_run(run_id) is None:
            store.add_run(run_id, kind=kind, name=(started.get("spec") or {}).get("name", kind),
                          run_dir=str(run_dir), created=events[0]["t"])
            store.add_events(run_id, events)
        runs[kind] = run_id
    if "reward" in runs and "ppo" in runs:
        build_chain_queue(workspace, runs)
    return runs


def build_chain_queue(workspace: Path, runs: dict[str, str]) -> None:
    """The queue the recorded reward run learned from, made here (see the module's docstring)."""
    reward = yaml.safe_load((workspace / "runs" / runs["reward"] / "spec.yaml").read_text(encoding="utf-8"))
    queue = next(s for s in reward["data"]["sources"] if s.startswith("queue:")).removeprefix("queue:")
    policy = yaml.safe_load((workspace / "runs" / runs["ppo"] / "spec.yaml").read_text(encoding="utf-8"))["policy"]
    answered_by = f"{runs['finetune']}@{Path(policy['path']).name}"  # as the engine labels a checkpoint's answers
    store = LabelStore(workspace / "store.db", rng=random.Random(3))
    if any(q.name == queue for q in store.queues()):
        return
    store.create_queue(queue, guidelines="Labeled by the reverse task's checker (the demo), not by a person.")
    rng = random.Random(4)
    items = []
    for record in generate("reverse", 240, seed=21):
        right = record["output"]
        answers = [{"text": right, "model": answered_by, "meta": {"correct": True}},
                   {"text": near_miss(right, rng), "model": answered_by, "meta": {"correct": False}}]
        rng.shuffle(answers)
        items.append({"prompt": f"{record['instruction']}\n\n{record['input']}", "candidates": answers,
                      "meta": {"task": "reverse"}})
    store.add_items(queue, items)
    label_by_checker(store, queue)


def shoot_rlhf_page(window, shot, chain: dict[str, str], settle) -> None:
    """The chain on the Reward & PPO page, the reward model's wizard, then the PPO and reward runs in the
    monitor."""
    page = window.page("rlhf")
    page.refresh()
    if chain:
        page.sft_box.setCurrentIndex(max(0, page.sft_box.findData(chain["finetune"])))
    shot("rlhf")
    if not chain:
        return
    page.start("reward")  # the reward model's wizard, prefilled from the chain
    shot("rlhf-reward-wizard")
    page.start("kto")  # unpaired good / bad answers, with the dataset_info.json picker beside the sources
    shot("rlhf-kto-wizard")
    page.stack.setCurrentIndex(0)
    for kind in ("ppo", "reward"):
        window.open_run(chain[kind])
        monitor = window.monitor_page.monitor
        monitor.tabs.setCurrentWidget(monitor.charts_page)
        for _ in range(50):  # the monitor paints a few charts per tick (REDRAW_BUDGET_S): until all are
            settle()
            monitor.redraw()
            if not any(chart.dirty for chart in monitor.charts.values() if not chart.visibleRegion().isEmpty()):
                break
        shot(f"monitor-{kind}")
    window.show_page("rlhf")


def record(workspace: Path, out: Path = RECORDED_CHAIN) -> None:
    """Copy the newest demo run of each stage of `workspace` (the demo's fine-tuning run, its reward
    model, PPO and GRPO: one demo's chain when the workspace's newest demo finished) into `out`, the
    workspace's path replaced by the placeholder."""
    runs_dir = workspace / "runs"
    newest: dict[str, Path] = {}
    # Oldest first, by the date and time in the run id (NAME-YYYYMMDD-HHMMSS-xxxx): the newest wins.
    for run_dir in sorted(runs_dir.glob(f"{DEMO_PREFIX}*"), key=lambda d: d.name.split("-")[-3:-1]):
        kind = (yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8")) or {}).get("kind")
        if kind in KINDS and KINDS[kind].stage in CHAIN_STAGES:
            newest[kind] = run_dir
    root = str(workspace.resolve())
    for kind, run_dir in newest.items():
        target = out / kind
        target.mkdir(parents=True, exist_ok=True)
        events = [e for e in read_events(run_dir / "events.jsonl") if e.get("type") not in DROPPED]
        lines = [json.dumps({**e, "seq": i}, ensure_ascii=False) for i, e in enumerate(events)]
        (target / "events.jsonl").write_text("\n".join(lines).replace(root, PLACEHOLDER) + "\n", encoding="utf-8")
        spec = (run_dir / "spec.yaml").read_text(encoding="utf-8")
        (target / "spec.yaml").write_text(spec.replace(root, PLACEHOLDER), encoding="utf-8")
        print(f"{kind}: {run_dir.name} → {target}")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "record":
        sys.exit("usage: python -m tools.screenshots.rlhf record WORKSPACE")
    record(Path(sys.argv[2]))
