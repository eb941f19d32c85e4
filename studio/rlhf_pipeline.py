"""The RLHF chain of a workspace, read from its runs' specs: SFT model → labels → reward model → policy.

Runs are linked by what their specs name: a reward run whose `model.path` is the SFT run (its id
or its output folder) and whose preferences are `queue:NAME`; a PPO run whose `policy.path` is the
SFT run and whose `reward_model` is the reward run; DPO and GRPO runs whose `model.path` is the SFT
run. Nothing is stored twice: the chain is rebuilt from the run folders and the store.

Qt-free: the Reward & PPO page renders it; tests build it from plain folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

POLICY_KINDS = ("ppo", "dpo", "grpo")
# The figure each kind is judged by, as (split, metric, caption, is_share); the first one the run has.
# A policy's held-out task accuracy comes first: its per-iteration train reward is noisy (new prompts
# every iteration), and a reward model's score can climb while the answers get worse.
HEADLINE = {
    "finetune": (("eval", "exact_match", "exact match", True),),
    "reward": (("eval", "pairwise_accuracy", "pairwise accuracy", True),),
    "ppo": (("eval", "task_accuracy", "task accuracy", True), ("eval", "reward_mean", "held-out reward", False),
            ("train", "reward_mean", "mean reward", False)),
    "dpo": (("eval", "task_accuracy", "task accuracy", True), ("eval", "reward_accuracy", "preference accuracy", True)),
    "grpo": (("eval", "task_accuracy", "task accuracy", True), ("train", "reward_mean", "mean reward", False)),
}
STAGES = ("sft", "labels", "reward", "policy")


@dataclass
class StageRun:
    run_id: str
    kind: str
    name: str
    state: str
    spec: dict
    headline: str = ""  # e.g. "pairwise accuracy 94%"


@dataclass
class QueueState:
    name: str
    items: int
    done: int
    labels: int


@dataclass
class Pipeline:
    """One chain, anchored on an SFT model (a fine-tuning run, or any model folder)."""

    sft: StageRun | None
    sft_refs: set[str]  # how later specs may name the SFT model: run id, output folders
    queues: list[QueueState] = field(default_factory=list)
    reward_runs: list[StageRun] = field(default_factory=list)
    policy_runs: list[StageRun] = field(default_factory=list)

    @property
    def labels(self) -> int:
        return sum(q.labels for q in self.queues)

    def next_step(self) -> str:
        """The first stage that has nothing completed yet: sft, labels, reward, policy — or done."""
        if self.sft is None or self.sft.state != "completed":
            return "sft"
        if not self.labels:
            return "labels"
        if not any(r.state == "completed" for r in self.reward_runs) and \
                not any(r.kind == "dpo" for r in self.policy_runs):
            return "reward"
        if not any(r.state == "completed" for r in self.policy_runs):
            return "policy"
        return "done"

    def best_reward_run(self) -> StageRun | None:
        done = [r for r in self.reward_runs if r.state == "completed"]
        return done[0] if done else (self.reward_runs[0] if self.reward_runs else None)

    def queue_for_reward(self) -> str | None:
        """The queue the reward model should learn from: the one with the most labels."""
        labeled = [q for q in self.queues if q.labels]
        return max(labeled, key=lambda q: q.labels).name if labeled else None


def read_spec(run_dir: Path) -> dict:
    try:
        data = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def refs_of(workspace: Path, run_id: str) -> set[str]:
    """Every way a spec may name run `run_id`'s model: its id and its output model folders."""
    folder = Path(workspace) / "runs" / run_id
    output = folder / "output"
    refs = {run_id, str(folder)}  # the folder: anything inside it too, such as a checkpoint (see _names)
    for name in ("merged", "model", "policy", "reward_model", "adapter"):
        refs.add(str(output / name))
    return refs


def build_pipeline(workspace: Path | str, store: Any, label_store: Any, sft_run: str | None) -> Pipeline:
    """The chain anchored on fine-tuning run `sft_run` (None: the newest fine-tuning run)."""
    workspace = Path(workspace)
    finetunes = store.runs(kind="finetune")
    if sft_run is None and finetunes:
        sft_run = finetunes[0].run_id
    sft = _stage_run(workspace, store, sft_run) if sft_run else None
    refs = refs_of(workspace, sft_run) if sft_run else set()
    pipeline = Pipeline(sft=sft, sft_refs=refs)
    for queue in label_store.queues() if label_store is not None else []:
        progress = label_store.progress(queue)
        pipeline.queues.append(QueueState(queue.name, progress.items, progress.done, progress.labels - progress.skipped))
    reward_refs: set[str] = set()
    for record in store.runs(kind="reward"):
        run = _stage_run(workspace, store, record.run_id)
        if _names(run.spec.get("model"), refs):
            pipeline.reward_runs.append(run)
            reward_refs |= refs_of(workspace, run.run_id)
    for kind in POLICY_KINDS:
        for record in store.runs(kind=kind):
            run = _stage_run(workspace, store, record.run_id)
            model = run.spec.get("policy") if kind == "ppo" else run.spec.get("model")
            if _names(model, refs):
                pipeline.policy_runs.append(run)
    pipeline.policy_runs.sort(key=lambda r: r.run_id, reverse=True)
    return pipeline


def _names(model: Any, refs: set[str]) -> bool:
    """Whether a spec's model (path or adapter) is one of `refs` or lies inside one of its folders:
    the demo's PPO and GRPO start from a checkpoint of the SFT run."""
    if not isinstance(model, dict) or not refs:
        return False
    paths = [str(model.get(key) or "") for key in ("path", "adapter")]
    return any(path and (path in refs or any(path.startswith(ref.rstrip("/") + "/") for ref in refs if "/" in ref))
               for path in paths)


def _stage_run(workspace: Path, store: Any, run_id: str) -> StageRun:
    record = store.get_run(run_id)
    spec = read_spec(workspace / "runs" / run_id)
    kind = (record.kind if record else "") or str(spec.get("kind") or "")
    run = StageRun(run_id=run_id, kind=kind, name=(record.name if record else "") or str(spec.get("name") or ""),
                   state=record.state if record else "unknown", spec=spec)
    run.headline = headline(store, run)
    return run


def headline(store: Any, run: StageRun) -> str:
    """The run's figure (first → last when it moved), e.g. "pairwise accuracy 52% → 94%"."""
    if run.kind not in HEADLINE:
        return ""
    for split, name, caption, share in HEADLINE[run.kind]:
        _, _, values = store.metric_series(run.run_id, split, name)
        if len(values):
            break
    else:
        return ""

    def show(value: float) -> str:
        return f"{value:.0%}" if share else f"{value:.3g}"

    first, last = float(values[0]), float(values[-1])
    return f"{caption} {show(first)} → {show(last)}" if len(values) > 1 and first != last else \
        f"{caption} {show(last)}"
