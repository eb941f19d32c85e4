"""`studio-engine`: everything the studio can do, from a terminal (DESIGN §4).

Import-light at module level: `schema`, `validate`, `list` answer without loading torch; the
verbs that train import the runner inside their functions.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine import __version__
from engine.protocol import EventReader, EventWriter, json_lines_sink, read_events
from engine.rundir import (RunDirectory, RunStatus, default_workspace, find_run, list_runs, new_run_id,
                           pid_alive)
from engine.specs import SpecError, json_schema_text, load_spec, spec_to_yaml

EXIT_INVALID = 2


def _fail(message: str, code: int = 1) -> int:
    print(f"studio-engine: {message}", file=sys.stderr)
    return code


def _live_sink(args, stream):
    """Readable view on a terminal, JSON lines for programs (or with --json)."""
    if getattr(args, "json", False) or not stream.isatty():
        return json_lines_sink(stream)
    from engine.terminal_view import TerminalView
    return TerminalView(stream, color=True)


# --- run, resume, and the detached child -------------------------------------------------------

def _load_spec_or_exit(path: str):
    try:
        return load_spec(path)
    except FileNotFoundError:
        raise SystemExit(_fail(f"no spec file at {path}", EXIT_INVALID))
    except SpecError as e:
        print(e, file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def _create_run(workspace: Path, spec, run_id: str | None) -> RunDirectory:
    run = RunDirectory.create(workspace, run_id or new_run_id(spec.name))
    run.spec_path.write_text(spec_to_yaml(spec), encoding="utf-8")
    run.write_status(RunStatus(state="starting", kind=spec.kind, name=spec.name))
    return run


def _spawn_detached(workspace: Path, run: RunDirectory, resume: bool) -> int:
    command = [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "_exec", run.run_id]
    if resume:
        command.append("--resume")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    with open(run.log_path, "ab") as log_file:
        # Own session: the run survives the terminal (or SSH session, or GUI) that started it.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=log_file, start_new_session=True, env=env)
    status = run.read_status()
    if status is None or status.state == "starting":
        run.write_status(RunStatus(state="starting", pid=process.pid, kind=status.kind if status else "",
                                   name=status.name if status else "",
                                   last_seq=status.last_seq if status else -1))
    print(json.dumps({"run_id": run.run_id, "run_dir": str(run.path), "pid": process.pid}), flush=True)
    return 0


def _execute(args, run: RunDirectory, spec, resume: bool) -> int:
    from engine.launch import needs_launcher
    from engine.runner import execute

    if needs_launcher(spec):
        return _execute_launched(args, run, spec, resume)
    pretty = not args.json and sys.stdout.isatty()
    code = execute(run, spec, resume=resume, echo_stderr=not pretty,
                   sink_factory=lambda stream: _live_sink(args, stream))
    if pretty:
        print(f"Run folder: {run.path}")
        if code == 130:
            print(f"Resume with: studio-engine resume {run.run_id}")
    return code


def cmd_run(args) -> int:
    spec = _load_spec_or_exit(args.spec)
    run = _create_run(args.workspace, spec, args.run_id)
    if args.detach:
        return _spawn_detached(args.workspace, run, resume=False)
    return _execute(args, run, spec, resume=False)


def _execute_launched(args, run: RunDirectory, spec, resume: bool) -> int:
    """Several processes (torchrun / deepspeed): start the launcher, show rank 0's events as they land."""
    from engine.launch import launcher_command, launcher_env

    command = launcher_command(spec, args.workspace, run.run_id, resume)
    env = launcher_env(spec, dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8"))
    with open(run.log_path, "ab") as log_file:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, env=env)
    from_seq = run.read_status().last_seq + 1 if resume and run.read_status() else 0
    follow = argparse.Namespace(workspace=args.workspace, run=run.run_id, from_seq=max(0, from_seq), follow=True,
                                json=getattr(args, "json", False), launcher=process)
    code = cmd_attach(follow)
    process.wait()
    finished = [e for e in read_events(run.events_path) if e["type"] == "finished"]
    if not finished:
        return _fail(f"the launcher exited with {process.returncode} before the run finished; see {run.log_path}")
    return {"completed": 0, "cancelled": 130}.get(finished[-1]["status"], 1) if code == 0 else code


def cmd_exec(args) -> int:
    run = find_run(args.workspace, args.run)
    spec = load_spec(run.spec_path)
    from engine.launch import needs_launcher
    from engine.runner import execute
    if needs_launcher(spec):  # a detached multi-process run: this process becomes the launcher's parent
        return _execute_launched(argparse.Namespace(workspace=args.workspace, json=True), run, spec, args.resume)
    return execute(run, spec, resume=args.resume, echo_stderr=False)


def cmd_resume(args) -> int:
    run = find_run(args.workspace, args.run)
    status = run.effective_status()
    if status and status.active:
        return _fail(f"run {run.run_id} is still running (pid {status.pid}); `studio-engine attach "
                     f"{run.run_id} --follow` shows it.")
    if status and status.state == "completed":
        return _fail(f"run {run.run_id} has already completed; its model is in {run.output_dir}.")
    spec = _load_spec_or_exit(str(run.spec_path))
    run.write_status(RunStatus(state="starting", kind=spec.kind, name=spec.name,
                               last_seq=status.last_seq if status else -1, step=status.step if status else None))
    if args.detach:
        return _spawn_detached(args.workspace, run, resume=True)
    return _execute(args, run, spec, resume=True)


# --- following and controlling runs ------------------------------------------------------------

def cmd_attach(args) -> int:
    run = find_run(args.workspace, args.run)
    sink = _live_sink(args, sys.stdout)
    reader = EventReader(next_seq=args.from_seq)
    offset = 0
    quiet_polls = 0
    finished = False  # sticky: the finished event may arrive while the process is still winding down
    while True:
        with open(run.events_path, "rb") if run.events_path.exists() else open(os.devnull, "rb") as f:
            f.seek(offset)
            chunk = f.read()
        offset += len(chunk)
        events = reader.feed(chunk)
        for event in events:
            sink(event)
            finished = finished or event["type"] == "finished"
        if not args.follow:
            return 0
        status = run.effective_status()
        launcher = getattr(args, "launcher", None)  # a multi-process run's launcher, while rank 0 starts
        alive = (status is not None and status.active) or (launcher is not None and launcher.poll() is None)
        if finished and not alive:
            return 0
        if not events and not alive:
            # The engine is gone: read once more (it may have written its last lines), then stop.
            quiet_polls += 1
            if quiet_polls > 2:
                for event in reader.flush():
                    sink(event)
                state = status.state if status else "unknown"
                print(f"studio-engine: run {run.run_id} is not running (state: {state}) and wrote no "
                      f"`finished` event; `studio-engine resume {run.run_id}` continues it.", file=sys.stderr)
                return 1
        else:
            quiet_polls = 0
        time.sleep(0.2)


def cmd_cancel(args) -> int:
    run = find_run(args.workspace, args.run)
    status = run.effective_status()
    if not status or not status.active or not pid_alive(status.pid):
        return _fail(f"run {run.run_id} is not running (state: {status.state if status else 'unknown'}).")
    if not args.force:
        os.kill(status.pid, signal.SIGINT)
        print(f"Asked run {run.run_id} to stop: it saves a checkpoint, then ends as cancelled. "
              f"`studio-engine cancel {run.run_id} --force` stops it at once.")
        return 0
    try:
        if os.getpgid(status.pid) == status.pid:
            os.killpg(status.pid, signal.SIGKILL)  # the run and its data-loader workers
        else:
            os.kill(status.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for _ in range(50):
        if not pid_alive(status.pid):
            break
        time.sleep(0.1)
    events = EventWriter(run.events_path)
    events.finished("cancelled", {"forced": True, "step": status.step})
    events.close()
    run.write_status(RunStatus(state="cancelled", pid=status.pid, last_seq=events.next_seq - 1,
                               kind=status.kind, name=status.name, step=status.step))
    print(f"Stopped run {run.run_id} at once; it resumes from its last checkpoint.")
    return 0


# --- looking around ----------------------------------------------------------------------------

def _run_summary(run: RunDirectory) -> dict:
    status = run.effective_status()
    last_metrics: dict[str, dict] = {}
    finished = None
    for event in read_events(run.events_path):
        if event["type"] == "metric":
            last_metrics.setdefault(event["split"], {}).update(
                {k: v for k, v in event["values"].items() if v is not None}, step=event["step"])
        elif event["type"] == "finished":
            finished = event
    return {"run_id": run.run_id, "path": str(run.path), "kind": status.kind if status else "",
            "name": status.name if status else "", "state": status.state if status else "unknown",
            "pid": status.pid if status else None, "step": status.step if status else None,
            "updated": status.updated if status else None, "last_metrics": last_metrics,
            "finished": finished, "checkpoints": [str(p) for p in run.checkpoints()]}


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
        print(f"{s['run_id']:<44} {s['kind']:<9} {s['state']:<10} {s['step'] or 0:>7}  "
              f"{'' if loss is None else f'{loss:.4f}':>8}  {updated}")
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
    for split, values in summary["last_metrics"].items():
        shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        print(f"Last {split} metrics: {shown}")
    if summary["finished"] and summary["finished"].get("error"):
        error = summary["finished"]["error"]
        print(f"Error: {error.get('message')}\nWhat to do: {error.get('hint')}")
    if summary["checkpoints"]:
        print("Checkpoints: " + ", ".join(Path(p).name for p in summary["checkpoints"]))
    for name, label in (("model", "Model"), ("tokenizer", "Tokenizer"), ("dataset", "Cleaned dataset"),
                        ("report.html", "Report")):
        if (run.output_dir / name).exists():
            print(f"{label}: {run.output_dir / name}")
    return 0


def _show_document(run: RunDirectory, doc_id: str, as_json: bool) -> int:
    """Which step kept, changed or removed one document of a clean run, and why."""
    from engine.cleaning.outputs import lookup_fates

    fates_path = run.path / "fates.sqlite"
    if not fates_path.exists():
        return _fail(f"run {run.run_id} has no document fates: --doc works on clean runs "
                     "(fates.sqlite appears as the run reads its input)")
    rows = lookup_fates(fates_path, doc_id)
    if not rows:
        return _fail(f"no document with id '{doc_id}' in run {run.run_id}; ids look like "
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
    from engine.cleaning.preview import preview, preview_text
    from engine.errors import UserError

    spec = _load_spec_or_exit(args.spec)
    if spec.kind not in ("clean", "finetune", "evaluate"):
        return _fail(f"{args.spec} is a {spec.kind} spec; preview is for kind: clean (the dry run), "
                     "kind: finetune (data, rendering and memory) and kind: evaluate (the rendered prompts)",
                     EXIT_INVALID)
    try:
        if spec.kind == "finetune":
            from engine.finetune.preview import preview as finetune_preview, preview_text as finetune_text
            result = finetune_preview(spec, args.workspace, args.sample)
            text = finetune_text
        elif spec.kind == "evaluate":
            from engine.playground.preview import preview as evaluate_preview, preview_text as evaluate_text
            result, text = evaluate_preview(spec, args.workspace, args.sample), evaluate_text
        else:
            result, text = preview(spec, args.sample), preview_text
    except UserError as e:
        return _fail(f"{e.message}\nWhat to do: {e.hint}" if e.hint else e.message)
    print(json.dumps(result, ensure_ascii=False) if args.json else text(result))
    return 0


def cmd_doctor(args) -> int:
    from engine.devices import doctor_report
    report = doctor_report(args.workspace)
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


def cmd_schema(args) -> int:
    try:
        print(json_schema_text(args.kind))
    except KeyError as e:
        return _fail(e.args[0], EXIT_INVALID)
    return 0


def cmd_validate(args) -> int:
    spec = _load_spec_or_exit(args.spec)
    print(f"{args.spec}: valid {spec.kind} spec '{spec.name}'.")
    return 0


def cmd_demo(args) -> int:
    from engine.demo_pipeline import run_demo

    def run_stage(spec) -> tuple[RunDirectory, int]:
        run = _create_run(args.workspace, spec, None)
        return run, _execute(args, run, spec, resume=False)

    return run_demo(args, run_stage)


def add_label_commands(sub) -> None:
    """`labels …` (queues, import, export, agreement) and `label-server` (the web labeling page)."""
    from engine.labeling.commands import add_labels_command
    from engine.labeling.web import add_label_server_command

    add_labels_command(sub)
    add_label_server_command(sub)


SPEC_HELP = "the job spec, a YAML file"
RUN_HELP = "a run id, a unique prefix of one, or a run folder"
JSON_HELP = "print JSON (events as JSON lines) instead of the readable view"
DETACH_HELP = "run in the background, surviving this terminal; prints the run id, folder and pid as JSON"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="studio-engine", description=(
        "Atelier's headless engine: validate and run job specs, follow and control runs."))
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--workspace", type=Path, default=None,
                        help="workspace folder holding runs/ (default: $ATELIER_WORKSPACE or ~/atelier)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func, help: str, **kwargs):
        p = sub.add_parser(name, help=help, description=help, **kwargs)
        p.set_defaults(func=func)
        return p

    p = add("run", cmd_run, "Run a job spec (YAML).")
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--detach", action="store_true", help="run in the background, surviving this terminal")
    p.add_argument("--json", action="store_true", help="print raw JSON-line events even on a terminal")
    p.add_argument("--run-id", help="use this run id instead of a generated one")
    p = add("attach", cmd_attach, "Print a run's events, from a seq on; --follow keeps following.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--from-seq", type=int, default=0, help="the first event to print, by seq (0: from the start)")
    p.add_argument("--follow", action="store_true",
                   help="keep printing new events until the run finishes (or its engine stops)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("cancel", cmd_cancel, "Stop a run gracefully (checkpoint, then cancelled); --force stops it at once.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--force", action="store_true",
                   help="stop at once (kill the run's processes) instead of checkpointing first")
    p = add("resume", cmd_resume, "Continue a stopped run from its last checkpoint (same run id).")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--detach", action="store_true", help=DETACH_HELP)
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("list", cmd_list, "List the runs in the workspace.")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("show", cmd_show, "Show a run's state, last metrics and outputs; --doc ID: one document's fate in a clean run.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--doc", metavar="ID", help="a document id of a clean run: which step removed or changed it, and why")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("preview", cmd_preview, "Clean spec: dry run on a random sample (what each step would remove, and why). "
                                    "Finetune spec: data format, rendered records, memory per method. "
                                    "Evaluate spec: each variant's rendered prompt, as each model reads it.")
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--sample", type=int, default=None, help="documents in the sample (default: preview.sample_documents)")
    p.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    p = add("doctor", cmd_doctor, "Hardware, CUDA and package versions of this engine.")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("schema", cmd_schema, "Print the JSON schema of job specs (all kinds, or one).")
    p.add_argument("kind", nargs="?", help="one job kind (default: every kind)")
    p = add("validate", cmd_validate, "Check a spec and report every problem with its field.")
    p.add_argument("spec", help=SPEC_HELP)
    p = add("demo", cmd_demo, "Run the demo pipeline on the embedded default corpus.")
    p.add_argument("--steps", type=int, default=300, help="pretraining steps (default 300)")
    p.add_argument("--finetune-steps", type=int, default=None, help="fine-tuning steps (default 400)")
    p.add_argument("--no-rlhf", dest="rlhf", action="store_false",
                   help="stop after fine-tuning (skip labeling, the reward model, PPO and GRPO)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    add_label_commands(sub)
    from engine.serve.command import add_serve_command
    add_serve_command(sub)
    from engine.hub import add_push_command
    add_push_command(sub)
    p = sub.add_parser("_exec")  # the detached child of `run --detach` / `resume --detach`
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--resume", action="store_true")
    p.set_defaults(func=cmd_exec)
    return parser


# Commands that train, load models or describe devices: they need torch and transformers, which a
# studio-only install (pipx, the bundle) does not have. `validate`, `schema`, `list`, `labels` do not.
NEEDS_ENGINE_PACKAGES = {"run", "resume", "_exec", "preview", "demo", "serve", "doctor"}


def missing_engine_packages() -> list[str]:
    import importlib.util

    return [name for name in ("torch", "transformers", "datasets") if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.workspace = (args.workspace or default_workspace()).expanduser().resolve()
    if args.command in NEEDS_ENGINE_PACKAGES and (missing := missing_engine_packages()):
        return _fail(f"this Python ({sys.executable}) has the studio but not the engine: {', '.join(missing)} "
                     f"{'is' if len(missing) == 1 else 'are'} not installed. Install the engine with "
                     f"`pip install \"atelier[engine]\"` (from a clone: `pip install \".[engine]\"`), or point the "
                     f"studio at a Python that has it.")
    try:
        return args.func(args)
    except LookupError as e:
        return _fail(str(e.args[0]))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
