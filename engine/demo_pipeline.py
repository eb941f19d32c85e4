"""`studio-engine demo`: the embedded default's whole pipeline, stage by stage, each a run of the
workspace (DESIGN §8). The specs are in engine/demo.py; this module runs them in order, hands each
stage's output to the next and prints what every stage achieved.

Stages: clean the standard library's docstrings → pretrain on them → fine-tune on a checkable task →
RLHF (the fine-tuned model's answers labeled by the task's checker, a reward model, PPO and GRPO).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from engine.demo import (DEMO_FINETUNE_STEPS, DEMO_TASK, demo_candidates_spec_data, demo_clean_spec_data,
                         demo_finetune_spec_data, demo_grpo_spec_data, demo_ppo_spec_data, demo_reward_spec_data,
                         demo_spec_data)
from engine.protocol import read_events
from engine.rundir import RunDirectory
from engine.specs import parse_spec

# Runs one stage's spec as a new run of the workspace; returns the run and the engine's exit code.
RunStage = Callable[[object], tuple[RunDirectory, int]]
STAGES = 4


class StageFailed(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


def run_demo(args, run_stage: RunStage) -> int:
    """The whole demo; `args` carries workspace, steps, finetune_steps and rlhf from the command line."""
    def stage(spec_data: dict, label: str) -> RunDirectory:
        run, code = run_stage(parse_spec(spec_data, label))
        if code != 0:
            raise StageFailed(code)
        return run

    try:
        dataset, clean_run = clean_stage(stage)
        model = pretrain_stage(stage, dataset, args.steps)
        sft_run, sft_model, sft_summary = finetune_stage(stage, model, args.finetune_steps or DEMO_FINETUNE_STEPS)
        rlhf = rlhf_stage(stage, args.workspace, sft_model, rl_start(sft_run)) if args.rlhf else None
    except StageFailed as failed:
        return failed.code
    print(f"\nDemo finished.\nCleaned dataset: {dataset}\nCleaning report: {clean_run.output_dir / 'report.html'}\n"
          f"Pretrained model (Hugging Face layout): {model}\nFine-tuned model: {sft_model}\n"
          f"Reversing words, exact match on held-out items: {sft_summary.get('exact_match_before', 0):.0%} before, "
          f"{sft_summary.get('exact_match_after', 0):.0%} after fine-tuning.")
    if rlhf:
        print(rlhf)
    print("See the runs in the studio with `studio`, or `studio-engine list`.")
    return 0


def clean_stage(stage) -> tuple[str, RunDirectory]:
    print(f"Atelier demo, stage 1 of {STAGES}: cleaning the docstrings of this Python's standard library "
          "(repair, normalise, quality filters, PII, exact and near duplicates).", flush=True)
    run = stage(demo_clean_spec_data(), "demo clean")
    report = json.loads((run.output_dir / "report.json").read_text(encoding="utf-8"))
    print(clean_summary(report, run), flush=True)
    return str(run.output_dir / "dataset"), run


def pretrain_stage(stage, dataset: str, steps: int) -> Path:
    data = demo_spec_data(steps=steps, sources=[dataset])
    print(f"\nAtelier demo, stage 2 of {STAGES}: pretraining a small {data['model']['architecture']} model on the "
          f"cleaned docstrings ({steps} steps on CPU take a few minutes).", flush=True)
    model = stage(data, "demo").output_dir / "model"
    if not model.exists():
        raise StageFailed(1)
    return model


def finetune_stage(stage, model: Path, steps: int) -> tuple[RunDirectory, Path, dict]:
    data = demo_finetune_spec_data(str(model), steps=steps)
    print(f"\nAtelier demo, stage 3 of {STAGES}: fine-tuning that model ({data['method']['name']}) to reverse 3–5 "
          f"words, {steps} steps; exact match on 100 held-out items is measured before and after.", flush=True)
    run = stage(data, "demo finetune")
    summary = finished_summary(run)
    return run, run.output_dir / ("model" if data["method"]["name"] == "full" else "adapter"), summary


def rl_start(sft_run: RunDirectory) -> Path:
    """The fine-tuning run's middle checkpoint: its final model is right ~90% of the time, which
    leaves PPO and GRPO little room; halfway it is right less than half the time."""
    checkpoints = sorted(sft_run.checkpoints_dir.glob("checkpoint-*"), key=lambda p: int(p.name.rsplit("-", 1)[1]))
    return checkpoints[0] if checkpoints else sft_run.output_dir / "model"


def rlhf_stage(stage, workspace: Path, sft_model: Path, start: Path) -> str:
    """Candidates from `start` (a checkpoint of the fine-tuning run, same tokenizer), labeled by the
    checker; a reward model on the final fine-tuned model's body; PPO and GRPO from `start`."""
    from engine.labeling.batch import import_batch
    from engine.labeling.checker_labels import label_by_checker
    from engine.labeling.store import LabelStore

    where = start.name.replace("-", " at step ")
    print(f"\nAtelier demo, stage 4 of {STAGES}: RLHF, starting from the fine-tuning run's {where}. It answers "
          f"new prompts four times each; the task's checker labels pairs of its answers (standing in for a person: "
          f"the labels are of kind 'checker' in the store); a reward model learns from them; PPO against the "
          f"reward model and GRPO against the checker then improve on the {where}.", flush=True)
    candidates = stage(demo_candidates_spec_data(str(start)), "demo candidates")
    store = LabelStore(workspace / "store.db")
    queue = store.create_queue(candidates.run_id.replace("-candidates-", "-labels-"), source=candidates.run_id,
                               guidelines="Labeled by the reverse task's checker (the demo), not by a person.")
    batch = import_batch(store, queue, candidates.run_id, workspace=workspace)
    labels = label_by_checker(store, queue)
    print(f"Queue '{queue.name}' in {store.path}: {batch.added} pairs from {batch.prompts} prompts; {labels.annotator} "
          f"preferred the right answer in {labels.preferences}, {labels.ties} ties, {labels.both_bad} both wrong.",
          flush=True)

    reward = stage(demo_reward_spec_data(str(sft_model), queue.name), "demo reward")
    reward_figures = json.loads((reward.output_dir / "metrics.json").read_text(encoding="utf-8"))
    ppo = stage(demo_ppo_spec_data(str(start), reward.run_id), "demo ppo")
    grpo = stage(demo_grpo_spec_data(str(start)), "demo grpo")
    return rlhf_summary(queue.name, reward, reward_figures, ppo, finished_summary(ppo), grpo, finished_summary(grpo))


def rlhf_summary(queue: str, reward: RunDirectory, reward_figures: dict, ppo: RunDirectory, ppo_summary: dict,
                 grpo: RunDirectory, grpo_summary: dict) -> str:
    """Before → after on the same 300 held-out prompts: greedy and sampled (temperature 1) exact match."""
    def change(summary: dict, name: str, percent: bool = True) -> str:
        before, after = summary.get(f"{name}_before"), summary.get(f"{name}_after")
        if before is None or after is None:
            return "n/a"
        return f"{before:.0%} → {after:.0%}" if percent else f"{before:.2f} → {after:.2f}"

    return "\n".join([
        f"Labels (by the checker of the {DEMO_TASK} task, not a person): queue '{queue}'.",
        f"Reward model: {reward.output_dir / 'reward_model'}; pairwise accuracy on held-out pairs "
        f"{reward_figures.get('pairwise_accuracy', float('nan')):.0%}.",
        f"PPO policy: {ppo.output_dir / 'policy'}; on 300 held-out prompts, exact match greedy "
        f"{change(ppo_summary, 'eval_task_accuracy')}, sampled {change(ppo_summary, 'eval_task_accuracy_sampled')}; "
        f"reward-model score {change(ppo_summary, 'eval_reward_mean', percent=False)}; KL to the starting checkpoint "
        f"{ppo_summary.get('kl_final') or 0:.2f} nats per answer at the end.",
        f"GRPO policy: {grpo.output_dir / 'policy'}; exact match greedy {change(grpo_summary, 'task_accuracy')}, "
        f"sampled {change(grpo_summary, 'task_accuracy_sampled')}.",
    ])


def finished_summary(run: RunDirectory) -> dict:
    return next(e for e in read_events(run.events_path) if e["type"] == "finished")["summary"]


def clean_summary(report: dict, run: RunDirectory) -> str:
    i, o = report["input"], report["output"]
    lines = [f"Cleaning kept {o['documents']:,} of {i['documents']:,} docstrings; it removed:"]
    for row in report["steps"]:
        if row["removed"]:
            rules = list(row["rules"].items())
            shown = ", ".join(f"{rule.split('.', 1)[-1]} {info['removed']:,}" for rule, info in rules[:4])
            lines.append(f"  {row['removed']:>5,} by {row['step']}" + (f" ({shown}{', …' if len(rules) > 4 else ''})"
                                                                      if row["step"] == "quality" else ""))
    # Show duplicates across modules first (_py_abc and abc, bz2 and lzma): they are what dedup is for.
    pairs = [(c["kept"]["id"], m["id"], m.get("similarity") or 1.0) for c in report["clusters"] for m in c["members"]]
    pairs.sort(key=lambda p: (p[0].split(":")[0] == p[1].split(":")[0], p[2] == 1.0))
    for kept, removed, similarity in pairs[:4]:
        lines.append(f"  e.g. {removed} repeats {kept} (similarity {similarity:.2f})")
    if pairs:
        lines.append(f"Why a document went: studio-engine show {run.run_id} --doc {pairs[0][1]}")
    lines.append(f"Report: {run.output_dir / 'report.html'}")
    return "\n".join(lines)
