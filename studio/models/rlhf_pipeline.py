"""The RLHF chain of one model, read from its runs' specs: SFT model → labels → reward model → policy.

Everything on it was made from that model or its answers: the labeling queues whose candidates it
(or a checkpoint of it) generated — found through the generate runs imported into them — the reward
runs whose `model.path` is the SFT run or that learned from those queues, and the PPO, DPO and GRPO
runs that start from it (`policy.path` / `model.path`). A reference links however a spec writes it:
a run id, a folder of the run or anything inside it, relative to the workspace or absolute, from
before the workspace moved or after (engine.workspace_paths.run_named). Nothing is stored twice: the chain
is rebuilt from the run folders and the stores.

Qt-free: the Reward & PPO page renders it; tests build it from plain folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from engine.kinds import kinds_at
from engine.workspace_paths import run_named
from studio.models.store import headline_value

STAGES = ("sft", "labels", "reward", "policy")
QUEUE_PREFIX = "queue:"


@dataclass
class StageRun:
    run_id: str
    kind: str
    name: str
    state: str
    spec: dict
    headline: str = ""  # e.g. "pairwise accuracy 94%"
    score: float | None = None  # the headline's latest value


# Policy kinds that learn from the labels themselves: the chain needs no reward model before them.
PREFERENCE_POLICIES = ("dpo", "kto")


@dataclass
class QueueState:
    name: str
    items: int
    done: int
    labels: int


@dataclass
class Pipeline:
    """One chain, anchored on an SFT model (a fine-tuning run)."""

    sft: StageRun | None
    queues: list[QueueState] = field(default_factory=list)  # of this model's answers
    other_queues: int = 0  # queues of other models' answers, or of unknown origin
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
                not any(r.kind in PREFERENCE_POLICIES for r in self.policy_runs):
            return "reward"
        if not any(r.state == "completed" for r in self.policy_runs):
            return "policy"
        return "done"

    def best_reward_run(self) -> StageRun | None:
        """The completed reward run with the best held-out pairwise accuracy (the newest when none
        measured it), else the newest reward run."""
        done = [r for r in self.reward_runs if r.state == "completed"]
        if done:
            return max(done, key=lambda r: -1.0 if r.score is None else r.score)  # max keeps the first of equals
        return self.reward_runs[0] if self.reward_runs else None

    def queue_for_reward(self) -> QueueState | None:
        """The queue the reward model should learn from: this model's queue with the most labels."""
        labeled = [q for q in self.queues if q.labels]
        return max(labeled, key=lambda q: q.labels) if labeled else None


def read_spec(run_dir: Path) -> dict:
    try:
        data = yaml.safe_load((run_dir / "spec.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def build_pipeline(workspace: Path | str, store: Any, label_store: Any, sft_run: str | None,
                   sources_cache: dict | None = None) -> Pipeline:
    """The chain anchored on fine-tuning run `sft_run` (None: the newest fine-tuning run).

    `sources_cache` (queue name -> (items, sources)) spares reading a large queue's items again
    while it has not grown."""
    workspace = Path(workspace)
    finetunes = store.runs(kind="finetune")
    if sft_run is None and finetunes:
        sft_run = finetunes[0].run_id
    pipeline = Pipeline(sft=_stage_run(workspace, store, sft_run) if sft_run else None)
    if sft_run is None:
        return pipeline
    links = _Links(workspace, sft_run)
    cache = sources_cache if sources_cache is not None else {}
    for queue in label_store.queues() if label_store is not None else []:
        progress = label_store.progress(queue)
        cached = cache.get(queue.name)
        if cached is None or cached[0] != progress.items:
            cached = cache[queue.name] = (progress.items, label_store.answer_sources(queue))
        if any(links.answers_of_sft(source) for source in cached[1]):
            pipeline.queues.append(QueueState(queue.name, progress.items, progress.done,
                                              progress.labels - progress.skipped))
        elif progress.items:
            pipeline.other_queues += 1
    own_queues = {f"{QUEUE_PREFIX}{q.name}" for q in pipeline.queues}
    for record in store.runs(kind="reward"):
        run = _stage_run(workspace, store, record.run_id)
        sources = (run.spec.get("data") or {}).get("sources") or []
        if links.names_sft(run.spec.get("model")) or own_queues.intersection(map(str, sources)):
            pipeline.reward_runs.append(run)
    for kind in (policy.name for policy in kinds_at("policy")):
        for record in store.runs(kind=kind):
            run = _stage_run(workspace, store, record.run_id)
            if links.names_sft(run.spec.get("policy") if kind == "ppo" else run.spec.get("model")):
                pipeline.policy_runs.append(run)
    pipeline.policy_runs.sort(key=lambda r: r.run_id, reverse=True)
    return pipeline


class _Links:
    """Whether a spec's model, or a queue's source, leads to the SFT run."""

    def __init__(self, workspace: Path, sft_run: str):
        self.workspace, self.sft_run = workspace, sft_run

    def names_sft(self, model: Any) -> bool:
        """A spec's model (path or adapter) is the SFT run, or lies in its folder (a checkpoint of it:
        the demo's PPO and GRPO start halfway)."""
        if not isinstance(model, dict):
            return False
        return any(run_named(str(model.get(key) or ""), self.workspace) == self.sft_run for key in ("path", "adapter"))

    def answers_of_sft(self, source: str) -> bool:
        """A queue's source (a generate run, its candidates file, a candidate's model label such as
        `run@checkpoint-200`) gives answers of the SFT model."""
        run = run_named(source, self.workspace) or run_named(source.split("@", 1)[0], self.workspace)
        if run is None:
            return False
        if run == self.sft_run:
            return True
        spec = read_spec(self.workspace / "runs" / run)
        return spec.get("kind") == "generate" and any(self.names_sft(m) for m in spec.get("models") or [])


def _stage_run(workspace: Path, store: Any, run_id: str) -> StageRun:
    record = store.get_run(run_id)
    spec = read_spec(workspace / "runs" / run_id)
    kind = (record.kind if record else "") or str(spec.get("kind") or "")
    run = StageRun(run_id=run_id, kind=kind, name=(record.name if record else "") or str(spec.get("name") or ""),
                   state=record.state if record else "unknown", spec=spec)
    run.headline, run.score = headline(store, run)
    return run


def headline(store: Any, run: StageRun) -> tuple[str, float | None]:
    """The run's figure (first → last when it moved), e.g. "pairwise accuracy 52% → 94%", and its
    latest value."""
    found = store.headline_series(run.run_id, run.kind)
    if found is None:
        return "", None
    figure, values = found
    first, last = float(values[0]), float(values[-1])
    text = f"{figure.caption} {headline_value(figure, first)} → {headline_value(figure, last)}" \
        if len(values) > 1 and first != last else f"{figure.caption} {headline_value(figure, last)}"
    return text, last
