"""Looking around without running anything: `list`, `show`, `preview`, `doctor`, `schema`, `validate`,
`import-config` — and `demo`, which runs the pipeline's stages one after another."""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from engine.cli.common import EXIT_INVALID, fail, load_spec_or_exit
from engine.cli.runs import create_run, execute_here
from engine.protocol import read_events
from engine.rundir import RunDirectory, find_run, list_runs
from engine.specs import SpecError, json_schema_text
from engine.workspace_paths import resolved_paths


def _run_summary(run: RunDirectory) -> dict:
    """What `list` and `show` say of a run. A run whose files cannot be read says so, with the reason
    (state "unreadable", `problem`): one damaged run never hides the others."""
    status = run.effective_status()
    problem = run.status_problem() if status is None else None
    last_metrics: dict[str, dict] = {}
    finished = None
    try:
        for event in read_events(run.events_path):  # events that are not what the protocol says are skipped
            if event["type"] == "metric":
                last_metrics.setdefault(event["split"], {}).update(
                    {k: v for k, v in event["values"].items() if v is not None}, step=event["step"])
            elif event["type"] == "finished":
                finished = resolved_paths(event, run.workspace)  # its paths, where the workspace is now
    except OSError as e:
        problem = problem or f"events.jsonl cannot be read ({e.strerror or e})"
    state = status.state if status else "unreadable" if problem else "unknown"
    return {"run_id": run.run_id, "path": str(run.path), "kind": status.kind if status else "",
            "name": status.name if status else "", "state": state,
            "pid": status.pid if status else None, "step": status.step if status else None,
            "updated": status.updated if status else None, "last_metrics": last_metrics,
            "finished": finished, "checkpoints": [str(p) for p in run.checkpoints()], **_slurm_summary(run),
            **({"problem": problem} if problem else {})}


def _slurm_summary(run: RunDirectory) -> dict:
    from engine.slurm import job_active, job_state, read_job

    job = read_job(run.path)
    if job is None:
        return {}
    # `active`: whether Slurm still holds the job, so a reader knows when to stop asking without its own
    # list of Slurm's states.
    state = job_state(job.job_id)
    return {"slurm": {**state, "active": job_active(state)}}


def cmd_list(args) -> int:
    summaries = [_run_summary(r) for r in list_runs(args.workspace)]
    if args.json:
        print(json.dumps(summaries, indent=1))
        return 0
    if not summaries:
        print(f"No runs in {args.workspace / 'runs'} yet. Start one with `studio-engine run SPEC` "
              "or `studio-engine demo`.")
        return 0
    print(f"{'RUN':<44} {'KIND':<9} {'STATE':<10} {'STEP':>7}  {'LOSS':>8}  UPDATED")
    for s in summaries:
        loss = s["last_metrics"].get("train", {}).get("loss")
        updated = time.strftime("%Y-%m-%d %H:%M", time.localtime(s["updated"])) if s["updated"] else ""
        shown_loss = f"{loss:.4f}" if isinstance(loss, (int, float)) else ""
        print(f"{s['run_id']:<44} {s['kind']:<9} {s['state']:<10} {s['step'] or 0:>7}  {shown_loss:>8}  "
              + (updated or s.get("problem", "")))
    return 0


def cmd_show(args) -> int:
    run = find_run(args.workspace, args.run)
    if args.doc is not None:
        return _show_document(run, args.doc, args.json)
    summary = _run_summary(run)
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"Run {summary['run_id']} ({summary['kind']}) — {summary['state']}, step {summary['step']}")
    print(f"Folder: {summary['path']}")
    if summary.get("problem"):
        print(f"Unreadable: {summary['problem']}")
    if summary.get("slurm"):
        slurm = summary["slurm"]
        reason = f" ({slurm['reason']})" if slurm.get("reason") not in (None, "", "None") else ""
        print(f"Slurm job {slurm['job_id']}: {slurm['state']}{reason}" + (f" on {slurm['nodes']}" if slurm.get("nodes") else ""))
    for split, values in summary["last_metrics"].items():
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"Last {split} metrics: {shown}")
    if summary["finished"] and summary["finished"].get("error"):
        error = summary["finished"]["error"]
        print(f"Error: {error.get('message')}\nWhat to do: {error.get('hint')}")
    if summary["checkpoints"]:
        print("Checkpoints: " + ", ".join(Path(p).name for p in summary["checkpoints"]))
    for name, label in (("model", "Model"), ("merged", "Merged model"), ("adapter", "Adapter"), ("policy", "Policy"),
                        ("reward_model", "Reward model"), ("tokenizer", "Tokenizer"), ("dataset", "Cleaned dataset"),
                        ("report.html", "Report")):
        if (run.output_dir / name).exists():
            print(f"{label}: {run.output_dir / name}")
    return 0


def _show_document(run: RunDirectory, doc_id: str, as_json: bool) -> int:
    """Which step kept, changed or removed one document of a clean run, and why."""
    from engine.cleaning.outputs import lookup_fates

    fates_path = run.path / "fates.sqlite"
    if not fates_path.exists():
        return fail(f"run {run.run_id} has no document fates: --doc works on clean runs "
                     "(fates.sqlite appears as the run reads its input)")
    rows = lookup_fates(fates_path, doc_id)
    if not rows:
        return fail(f"no document with id '{doc_id}' in run {run.run_id}; ids look like "
                     "'file.jsonl:12' (line 12), 'file.parquet:#3' (row 3), or the values of input.id_field")
    if as_json:
        print(json.dumps(rows, indent=1, ensure_ascii=False))
        return 0
    for row in rows:
        print(f"{row['id']} (from {row['source']}, document #{row['seq']}): {row['fate'].upper()}")
        if row["fate"] == "removed":
            print(f"  by step {row['step']}, rule {row['rule']}: {row['reason']}")
            if row["duplicate_of_id"]:
                print(f"  kept instead: {row['duplicate_of_id']} (from {row['duplicate_of_source']})")
        if row["modified"]:
            print(f"  changed by: {row['modified'].replace(',', ', ')}")
        if row["changes"]:
            changes = json.loads(row["changes"])
            print("  edits: " + ", ".join(f"{k} ×{n}" for k, n in changes.items()))
        print(f"  characters: {row['chars_in']:,} in" + (f", {row['chars_out']:,} out" if row["chars_out"] is not None else ""))
    return 0


def cmd_preview(args) -> int:
    import importlib

    from engine.errors import UserError
    from engine.kinds import KINDS
    from engine.library_loading import loading_libraries

    spec = load_spec_or_exit(args.spec)
    kind = KINDS[spec.kind]
    if kind.preview is None:
        previewed = ", ".join(f"kind: {k.name}" for k in KINDS.values() if k.preview)
        return fail(f"{args.spec} is a {spec.kind} spec; preview is for {previewed}", EXIT_INVALID)
    with loading_libraries():
        module = importlib.import_module(kind.preview)
    try:
        result = module.preview(spec, args.workspace, args.sample)
    except UserError as e:
        return fail(e.for_terminal())
    print(json.dumps(result, ensure_ascii=False) if args.json else module.preview_text(result))
    return 0


def cmd_doctor(args) -> int:
    from engine.devices import doctor_report
    report = {**doctor_report(args.workspace), "schema_hash": schema_hash()}
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"Atelier engine {report['engine_version']} (protocol v{report['protocol_version']}) on "
          f"{report['host']}, Python {report['python']}")
    cuda = report["cuda"]
    print(f"CUDA: {'yes, ' + str(cuda['devices']) + ' GPU(s), CUDA ' + str(cuda['version']) if cuda['available'] else 'no'}")
    for device in report["devices"]:
        print("  device: " + ", ".join(f"{k} {v}" for k, v in device.items()))
    print("Packages: " + ", ".join(f"{k} {v}" for k, v in report["packages"].items() if v))
    missing = [k for k, v in report["packages"].items() if not v]
    if missing:
        print("Not installed: " + ", ".join(missing))
    print(f"Workspace: {report['workspace']} ({report['disk_free_gib']} GiB free)")
    return 0


def schema_hash() -> str:
    """The SHA-256 of the text `studio-engine schema` prints: the studio compares it with its own to
    know whether this engine accepts the specs it knows."""
    import hashlib

    return hashlib.sha256(json_schema_text().encode("utf-8")).hexdigest()


def cmd_schema(args) -> int:
    if args.hash:
        if args.kind:
            return fail("--hash is of the whole schema; give no kind with it", EXIT_INVALID)
        print(schema_hash())
        return 0
    try:
        print(json_schema_text(args.kind))
    except KeyError as e:
        return fail(e.args[0], EXIT_INVALID)
    return 0


def cmd_validate(args) -> int:
    spec = load_spec_or_exit(args.spec)
    print(f"{args.spec}: valid {spec.kind} spec '{spec.name}'.")
    return 0


def cmd_import_config(args) -> int:
    from engine.config_import import import_config
    from engine.errors import UserError
    from engine.specs import parse_spec

    try:
        imported = import_config(args.config)
    except UserError as e:
        return fail(e.for_terminal())
    problems = ""
    try:
        spec = parse_spec(imported.spec, str(args.config))
    except SpecError as e:
        spec, problems = None, str(e)
    out = args.out or Path(args.config).with_suffix(".atelier.yaml")
    if spec is not None:  # what the config said, not every default: the spec reads like the config did
        out.write_text(yaml.safe_dump(imported.spec, sort_keys=False, allow_unicode=True), encoding="utf-8")
    if args.json:
        print(json.dumps({**imported.to_json(), "written": str(out) if spec is not None else None,
                          "problems": problems}, ensure_ascii=False, default=str))
    else:
        print(f"{args.config}: a {imported.tool} config → kind: {imported.spec['kind']}")
        print(f"Mapped ({len(imported.mapped)}):")
        for key, field, value in imported.mapped:
            print(f"  {key} → {field}: {value}")
        print(f"Not mapped ({len(imported.unmapped)}):")
        for key, why in imported.unmapped:
            print(f"  {key}: {why}")
        print(f"Wrote {out}; check it with `studio-engine preview {out}`." if spec is not None else
              f"The spec is not complete yet, so nothing was written:\n{problems}")
    return 0 if spec is not None else EXIT_INVALID


def cmd_demo(args) -> int:
    from engine.demo_pipeline import run_demo

    def run_stage(spec) -> tuple[RunDirectory, int]:
        run, lock = create_run(args.workspace, spec, None)
        with lock:
            return run, execute_here(args, run, spec, resume=False)

    return run_demo(args, run_stage)
