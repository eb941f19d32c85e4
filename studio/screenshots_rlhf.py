"""The Reward & PPO page and the RLHF charts for `studio --screenshot`, from a recorded real chain.

`resources/demo/rlhf/` holds the specs and event streams of one real `studio-engine demo` stage 4 —
the fine-tuning run, the reward run, PPO and GRPO — with the workspace written as `$WORKSPACE`
(heartbeats dropped, seq renumbered). `build_demo_rlhf_chain` puts them into the
screenshot workspace so that the page links them as it links real runs (by the paths their specs
name). `python -m studio.screenshots_rlhf record WORKSPACE` records a new chain from a demo's
workspace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from engine.protocol import read_events

RECORDED_CHAIN = Path(__file__).resolve().parent.parent / "resources" / "demo" / "rlhf"
KINDS = ("finetune", "reward", "ppo", "grpo")  # the chain's runs, in the order they ran
PLACEHOLDER = "$WORKSPACE"
DROPPED = {"heartbeat"}


def build_demo_rlhf_chain(workspace: Path, store) -> dict[str, str]:
    """The recorded chain's runs in `workspace` and `store`; returns {kind: run id} ({} without a recording)."""
    runs: dict[str, str] = {}
    for kind in KINDS:
        folder = RECORDED_CHAIN / kind
        if not (folder / "events.jsonl").exists():
            return {}
        text = (folder / "events.jsonl").read_text(encoding="utf-8").replace(PLACEHOLDER, str(workspace))
        events = [json.loads(line) for line in text.splitlines() if line.strip()]
        started = next(e for e in events if e.get("type") == "started")
        run_id = started["run_id"]
        run_dir = workspace / "runs" / run_id
        run_dir.mkdir(parents=True, exist_ok=True)
        spec = (folder / "spec.yaml").read_text(encoding="utf-8").replace(PLACEHOLDER, str(workspace))
        (run_dir / "spec.yaml").write_text(spec, encoding="utf-8")
        if store.get_run(run_id) is None:
            store.add_run(run_id, kind=kind, name=(started.get("spec") or {}).get("name", kind),
                          run_dir=str(run_dir), created=events[0]["t"])
            store.add_events(run_id, events)
        runs[kind] = run_id
    return runs


def shoot_rlhf_page(window, shot, chain: dict[str, str], settle) -> None:
    """The chain on the Reward & PPO page, then the PPO and reward runs in the monitor."""
    page = window.page("rlhf")
    page.refresh()
    if chain:
        page.sft_box.setCurrentIndex(max(0, page.sft_box.findData(chain["finetune"])))
    shot("rlhf")
    if not chain:
        return
    for kind in ("ppo", "reward"):
        window.open_run(chain[kind])
        monitor = window.monitor_page.monitor
        monitor.tabs.setCurrentIndex(0)
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
    newest = {kind: max(runs_dir.glob(f"demo-reverse-{name}-*"))
              for kind, name in (("finetune", "words"), ("reward", "reward"), ("ppo", "ppo"), ("grpo", "grpo"))}
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
        sys.exit("usage: python -m studio.screenshots_rlhf record WORKSPACE")
    record(Path(sys.argv[2]))
