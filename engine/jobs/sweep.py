"""The sweep recipe: ask Optuna for a trial's values → queue the trial as an ordinary run → follow its
events, reporting the objective (and stopping it early when the pruner says so) → tell Optuna how it
ended → write `output/sweep.json` (every trial) and `output/best_spec.yaml` (the best trial's spec).

Optuna is the search library (samplers, the median pruner, ask-and-tell for trials we run ourselves);
a grid is Optuna trials enqueued in order, so every method goes through one loop. The trials run in
the engine's queue (engine/queue.py), which starts them as its GPUs free; the sweep itself takes no slot.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import UserError
from engine.progress import ProgressMeter
from engine.protocol import read_events
from engine.queue import JobQueue, ensure_dispatcher, mark_cancelled, slots_needed
from engine.rundir import RunDirectory, RunStatus, atomic_write_text
from engine.specs import SpecError, load_yaml, parse_spec, spec_to_yaml
from engine.specs.sweep import Parameter, SweepSpec, trial_spec_data, with_values

POLL_SECONDS = 0.3


@dataclass
class Trial:
    number: int
    run_id: str
    values: dict[str, Any]
    # queued | running | completed | pruned | failed | cancelled (by hand) | interrupted (by the sweep's own stop)
    state: str = "queued"
    value: float | None = None  # the objective's last reported value
    step: int | None = None
    reports: list[list[float]] = field(default_factory=list)  # [step, value] of each report


def run(ctx) -> dict:
    spec: SweepSpec = ctx.spec
    workspace = ctx.run.workspace
    base = load_base(spec, [workspace])
    study = build_study(spec)
    total = len(spec.grid()) if spec.method == "grid" else spec.trials
    total = min(total, spec.trials or total)
    trials, active = restore(ctx, spec, study) if ctx.resumed else ([], {})
    if spec.method == "grid":
        enqueue_grid(study, spec, trials, total)
    queue = JobQueue(workspace)
    progress = ProgressMeter(ctx, "trials", total, "trials")
    ctx.events.log("info", f"{spec.method} sweep of {total} trial(s) over {', '.join(spec.parameters)}, "
                           f"{spec.objective.goal} {spec.objective.split} {spec.objective.metric}")
    try:
        while counted(trials) < total or active:
            while len(active) < spec.parallel and counted(trials) < total:
                asked = study.ask(distributions(spec.parameters))
                trial = queue_trial(ctx, spec, base, queue, asked, next_number(workspace, ctx.run.run_id, trials))
                trials.append(trial)
                active[trial.number] = (trial, asked)
                write_summary(ctx.run, spec, trials)
            for trial, asked in list(active.values()):
                if follow(ctx, spec, queue, trial, asked):
                    tell(study, trial, asked, spec)
                    del active[trial.number]
                    ended = counted(trials) - len(active)
                    progress.update(ended, step=ended)
                    report_trial(ctx, spec, trial)
                    write_summary(ctx.run, spec, trials)
            ctx.check_cancelled()
            time.sleep(POLL_SECONDS)
    except BaseException:  # cancelled, or failed: the trials under way stop with the sweep; `resume` redoes them
        for trial, _ in active.values():
            stop_trial(queue, workspace, trial)
            trial.state = "interrupted"
        write_summary(ctx.run, spec, trials)
        raise
    finally:
        queue.close()
    best = write_summary(ctx.run, spec, trials)
    if best is None:
        raise UserError(f"No trial of the sweep reported {spec.objective.split} {spec.objective.metric}: there is no "
                        "best trial.", "See the trials' runs (output/sweep.json lists them): a trial that failed says "
                        "why; otherwise set objective.metric to a metric the trials report (their monitor shows them).")
    ctx.events.artifact("report", str(ctx.run.output_dir / "sweep.json"), {"trials": len(trials)})
    ctx.events.artifact("report", str(ctx.run.output_dir / "best_spec.yaml"), {"run_id": best.run_id})
    return {"trials": counted(trials), "best_run": best.run_id, "best_value": best.value, "best_values": best.values,
            "pruned": sum(t.state == "pruned" for t in trials), "failed": sum(t.state == "failed" for t in trials)}


def counted(trials: list[Trial]) -> int:
    """The trials that count towards the sweep's total: all but those its own stop interrupted."""
    return sum(t.state != "interrupted" for t in trials)


def next_number(workspace: Path, sweep_id: str, trials: list[Trial]) -> int:
    number = max((t.number for t in trials), default=-1) + 1
    while (workspace / "runs" / f"{sweep_id}.t{number}").exists():  # made just before a crash, never recorded
        number += 1
    return number


def restore(ctx, spec: SweepSpec, study) -> tuple[list[Trial], dict[int, tuple[Trial, Any]]]:
    """Where a resumed sweep carries on from: its `output/sweep.json`. Ended trials are told to the study
    as they ended (the Bayesian search learns from them again), trials still queued or running are followed
    again, and the values of trials the sweep's stop interrupted are tried again as new trials."""
    path = ctx.run.output_dir / "sweep.json"
    if not path.exists():
        return [], {}
    try:
        trials = [Trial(**t) for t in json.loads(path.read_text(encoding="utf-8"))["trials"]]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: the sweep's record of its trials cannot be read ({e}).",
                        "Start the sweep again as a new run: studio-engine run SPEC.") from None
    space = distributions(spec.parameters)
    active: dict[int, tuple[Trial, Any]] = {}
    for trial in trials:
        if trial.state in ("queued", "running"):
            study.enqueue_trial(trial.values)  # asked at once: the study's trial for this run, with its values
            asked = study.ask(space)
            for step, value in trial.reports:
                if math.isfinite(value):
                    asked.report(value, int(step))
            active[trial.number] = (trial, asked)
        elif trial.state != "interrupted":
            study.add_trial(ended_trial(trial, space))
    again = [t for t in trials if t.state == "interrupted"]
    if spec.method != "grid":  # a grid enqueues the points not yet done, these among them
        for trial in again:
            study.enqueue_trial(trial.values)
    ctx.events.log("info", f"the sweep carries on: {counted(trials) - len(active)} trial(s) ended, {len(active)} "
                           f"still queued or running, {len(again)} interrupted and tried again")
    return trials, active


def ended_trial(trial: Trial, space: dict[str, Any]):
    from optuna.trial import TrialState, create_trial

    value = trial.value if trial.value is not None and math.isfinite(trial.value) else None
    state = TrialState.PRUNED if trial.state == "pruned" else TrialState.FAIL
    if trial.state == "completed" and value is not None:
        state = TrialState.COMPLETE
    return create_trial(params=trial.values, distributions=space, state=state,
                        value=value if state == TrialState.COMPLETE else None,
                        intermediate_values={int(step): v for step, v in trial.reports if math.isfinite(v)})


def enqueue_grid(study, spec: SweepSpec, trials: list[Trial], total: int) -> None:
    """The grid's points not yet run, in order: enqueued trials are asked first, in the order given."""
    taken = {json.dumps(t.values, sort_keys=True) for t in trials if t.state != "interrupted"}
    for values in spec.grid()[:total]:
        if json.dumps(values, sort_keys=True) not in taken:
            study.enqueue_trial(values)


def load_base(spec: SweepSpec, folders: list[Path]) -> dict[str, Any]:
    """The base spec as data, checked; a relative path is looked for in `folders`, in order (`run` looks
    beside the sweep's spec file, then in the workspace, and stores the base inline in the run's spec)."""
    if isinstance(spec.base, dict):
        return spec.base
    given = Path(spec.base).expanduser()
    candidates = [given] if given.is_absolute() else [folder / given for folder in folders]
    path = next((c for c in candidates if c.is_file()), None)
    if path is None:
        looked = ", ".join(str(c) for c in candidates)
        raise UserError(f"base: no spec file at {spec.base} (looked at {looked}).", "Give the path of the trials' "
                        "spec (absolute, or relative to the sweep's spec file or the workspace), or write the spec "
                        "inline under base:.")
    try:
        data, _ = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except SpecError as e:
        raise UserError(f"base: {e}", "Fix the base spec; `studio-engine validate` checks it.") from None
    if not isinstance(data, dict):
        raise UserError(f"base: {path} is not a spec (a mapping with a kind:).", "Give the path of a job spec.")
    try:
        parse_spec(trial_spec_data(data, spec.parameters), f"{path} (with the first trial's values)")
    except ValueError as e:
        raise UserError(f"base: {e}", "Give the path of the trials' spec, not a sweep.") from None
    except SpecError as e:
        raise UserError(f"base: {e}", "Fix the base spec or the parameters' paths; `studio-engine schema KIND` "
                        "lists the fields.") from None
    return data


def build_study(spec: SweepSpec):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep's events say what happens
    if spec.method == "bayes":
        sampler = optuna.samplers.TPESampler(seed=spec.seed)
    else:
        sampler = optuna.samplers.RandomSampler(seed=spec.seed)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=spec.pruning.startup_trials,
                                          n_warmup_steps=spec.pruning.warmup_steps)
              if spec.pruning.enabled else optuna.pruners.NopPruner())
    return optuna.create_study(direction=spec.objective.goal, sampler=sampler, pruner=pruner)


def distributions(parameters: dict[str, Parameter]) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    found = {}
    for path, p in parameters.items():
        if p.values is not None:
            found[path] = CategoricalDistribution(p.values)
        elif p.integer:
            found[path] = IntDistribution(int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
        else:
            found[path] = FloatDistribution(p.low, p.high, log=p.log, step=p.step)
    return found


def queue_trial(ctx, spec: SweepSpec, base: dict[str, Any], queue: JobQueue, asked, number: int) -> Trial:
    """Trial `number`'s run: a run folder holding the base spec with the trial's values, in the queue."""
    values = dict(asked.params)
    data = with_values(base, values)
    data["name"] = f"{str(data.get('name') or spec.name)[:56]}-t{number}"
    try:
        trial_spec = parse_spec(data, f"trial {number}")
    except SpecError as e:
        raise UserError(f"The spec of trial {number} ({values}) is not valid: {e}",
                        "Narrow the parameters' values to what the base spec's fields accept.") from None
    workspace = ctx.run.workspace
    run = RunDirectory.create(workspace, f"{ctx.run.run_id}.t{number}", spec_to_yaml(trial_spec, workspace),
                              RunStatus(state="queued", kind=trial_spec.kind, name=trial_spec.name))
    queue.add(run.run_id, slots_needed(trial_spec))
    ensure_dispatcher(queue)
    shown = ", ".join(f"{k}={v}" for k, v in values.items())
    ctx.events.log("info", f"trial {number} queued as run {run.run_id}: {shown}")
    return Trial(number, run.run_id, values)


def follow(ctx, spec: SweepSpec, queue: JobQueue, trial: Trial, asked) -> bool:
    """Read the trial's new reports; stop it when the pruner says so. True once it has ended."""
    run = RunDirectory(ctx.run.workspace / "runs" / trial.run_id)
    events = list(read_events(run.events_path)) if run.events_path.exists() else []
    objective = spec.objective
    reports = [(e["step"], e["values"][objective.metric]) for e in events
               if e["type"] == "metric" and e.get("split") == objective.split
               and isinstance(e.get("values", {}).get(objective.metric), (int, float))]
    for step, value in reports[len(trial.reports):]:
        trial.reports.append([step, value])
        trial.value, trial.step = float(value), step
        if not math.isfinite(trial.value):
            continue
        asked.report(trial.value, step)
        if trial.state != "pruned" and asked.should_prune():
            trial.state = "pruned"
            ctx.events.log("info", f"trial {trial.number} pruned at step {step}: {objective.metric} {value:.4g} is "
                                   "worse than the median of the earlier trials there")
            stop_trial(queue, ctx.run.workspace, trial)
    finished = next((e for e in reversed(events) if e["type"] == "finished"), None)
    status = run.effective_status()
    if finished is None and status is not None and status.state in ("queued", "starting", "running"):
        if trial.state == "queued" and status.state != "queued":
            trial.state = "running"
        return False
    if trial.state != "pruned":
        ended = finished["status"] if finished else (status.state if status else "failed")
        trial.state = {"completed": "completed", "cancelled": "cancelled"}.get(ended, "failed")
    return True


def stop_trial(queue: JobQueue, workspace: Path, trial: Trial) -> None:
    """Take the trial out of the queue, or ask its engine to stop (a checkpoint, then cancelled)."""
    import os
    import signal

    run = RunDirectory(workspace / "runs" / trial.run_id)
    found = queue.remove(trial.run_id)
    if found is not None and found.state == "waiting":
        mark_cancelled(run)
        return
    status = run.effective_status()
    if status is not None and status.active and run.engine_problem(status) is None:
        os.kill(status.pid, signal.SIGINT)


def tell(study, trial: Trial, asked, spec: SweepSpec) -> None:
    from optuna.trial import TrialState

    if trial.state == "pruned":
        study.tell(asked, state=TrialState.PRUNED)
    elif trial.state == "completed" and trial.value is not None and math.isfinite(trial.value):
        study.tell(asked, trial.value)
    else:
        if trial.state == "completed":
            trial.state = "failed"  # ran, but never reported the objective
        study.tell(asked, state=TrialState.FAIL)


def report_trial(ctx, spec: SweepSpec, trial: Trial) -> None:
    shown = f"{spec.objective.metric} {trial.value:.4g}" if trial.value is not None else "no objective reported"
    ctx.events.log("info", f"trial {trial.number} ({trial.run_id}) {trial.state}: {shown}")
    if trial.value is not None and math.isfinite(trial.value):
        # One point per trial: the sweep's own chart of the objective, trial by trial.
        ctx.events.metric(trial.number, "trial", {spec.objective.metric: trial.value})


def best_trial(spec: SweepSpec, trials: list[Trial]) -> Trial | None:
    done = [t for t in trials if t.state == "completed" and t.value is not None and math.isfinite(t.value)]
    if not done:
        return None
    pick = min if spec.objective.goal == "minimize" else max
    return pick(done, key=lambda t: t.value)


def write_summary(run: RunDirectory, spec: SweepSpec, trials: list[Trial]) -> Trial | None:
    """`output/sweep.json` (what the sweep view shows, rewritten after every change) and, once a trial
    has completed, `output/best_spec.yaml`; the best trial so far."""
    best = best_trial(spec, trials)
    scales = {path: "categorical" if p.values is not None else "log" if p.log else "linear"
              for path, p in spec.parameters.items()}
    summary = {"method": spec.method, "objective": spec.objective.model_dump(), "parameters": scales,
               "best": best.number if best else None, "best_run": best.run_id if best else None,
               "trials": [asdict(t) for t in trials]}
    atomic_write_text(run.output_dir / "sweep.json", json.dumps(summary, indent=1))
    if best is not None:
        best_run = RunDirectory(run.workspace / "runs" / best.run_id)
        atomic_write_text(run.output_dir / "best_spec.yaml", best_run.spec_path.read_text(encoding="utf-8"))
    return best
