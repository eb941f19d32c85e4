"""`studio-engine`: everything the studio can do, from a terminal (DESIGN §4).

Import-light at module level: `schema`, `validate`, `list` answer without loading torch; the
verbs that train import the runner inside their functions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from engine import __version__
from engine.detached import accept_stop_signals, start_detached
from engine.errors import ResourceError, UserError, disk_full_error
from engine.processes import process_start
from engine.protocol import EventReader, EventWriter, json_lines_sink, read_events
from engine.rundir import (
    RunDirectory, RunLock, RunStatus, check_run_id, default_workspace, find_run, list_runs, new_run_id, pid_alive,
)
from engine.specs import SpecError, json_schema_text, load_spec, spec_to_yaml
from engine.workspace_paths import resolved_paths

EXIT_INVALID = 2


def _fail(message: str, code: int = 1) -> int:
    print(f"studio-engine: {message}", file=sys.stderr)
    return code


def _live_sink(args, stream):
    """Readable view on a terminal, JSON lines for programs (or with --json)."""
    if getattr(args, "json", False) or not stream.isatty():
        return json_lines_sink(stream)
    from engine.terminal_view import TerminalView
    return TerminalView(stream, color=True, workspace=getattr(args, "workspace", None))


# --- run, resume, and the detached child -------------------------------------------------------

def _load_spec_or_exit(path: str):
    try:
        return load_spec(path)
    except FileNotFoundError:
        raise SystemExit(_fail(f"no spec file at {path}", EXIT_INVALID))
    except SpecError as e:
        print(e, file=sys.stderr)
        raise SystemExit(EXIT_INVALID)


def _starting(spec, pid: int, status: RunStatus | None = None) -> RunStatus:
    """The status of a run whose engine process `pid` is starting (carrying on from `status` on resume)."""
    return RunStatus(state="starting", pid=pid, pid_started=process_start(pid), kind=spec.kind, name=spec.name,
                     last_seq=status.last_seq if status else -1, step=status.step if status else None)


def _create_run(workspace: Path, spec, run_id: str | None) -> tuple[RunDirectory, RunLock]:
    """A new run folder holding the spec, locked by this process (nothing is left of one that could not
    be made whole, e.g. on a full disk)."""
    run_id = run_id or new_run_id(spec.name)
    try:
        return RunDirectory.create_locked(workspace, run_id, spec_to_yaml(spec, workspace),
                                          _starting(spec, os.getpid()))
    except OSError as e:
        raise disk_full_error(e, str(workspace / "runs")) or e


def _spawn_detached(workspace: Path, run: RunDirectory, lock: RunLock, resume: bool) -> int:
    pid = start_detached(workspace, run, lock, resume)
    print(json.dumps({"run_id": run.run_id, "run_dir": str(run.path), "pid": pid}), flush=True)
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
    if args.run_id is not None:
        check_run_id(args.run_id)
    spec = _load_spec_or_exit(args.spec)
    if spec.kind == "sweep" and isinstance(spec.base, str):
        spec = _sweep_with_base_inline(spec, Path(args.spec).parent, args.workspace)
    options = _slurm_options(args) if args.slurm else None
    run, lock = _create_run(args.workspace, spec, args.run_id)
    if options is not None:
        return _submit(args, run, lock, spec, options, resume=False)
    if args.detach:
        return _spawn_detached(args.workspace, run, lock, resume=False)
    with lock:
        return _execute(args, run, spec, resume=False)


def _sweep_with_base_inline(spec, spec_folder: Path, workspace: Path):
    """The sweep with its base spec file read now (beside the sweep's file, then in the workspace) and
    kept inline in the run's spec: the run reads the same base wherever it runs and whenever it resumes."""
    from engine.jobs.sweep import load_base

    try:
        return spec.model_copy(update={"base": load_base(spec, [spec_folder, workspace])})
    except UserError as e:
        raise SystemExit(_fail(e.for_terminal(), EXIT_INVALID)) from None


def _slurm_options(args):
    from engine.slurm import SlurmOptions, slurm_available

    options = SlurmOptions(partition=args.partition or "", account=args.account or "", time=args.time or "",
                           stop_before_s=args.stop_before)
    problems = options.problems() + [p for p in [slurm_available()] if p]
    if problems:
        raise SystemExit(_fail(" ".join(problems), EXIT_INVALID))
    return options


def _submit(args, run: RunDirectory, lock: RunLock, spec, options, resume: bool) -> int:
    """Write the run's batch script and sbatch it (engine.slurm); the run then belongs to the job."""
    import dataclasses

    from engine.slurm import SCRIPT_FILE, SlurmJob, batch_script, submit, write_job

    with lock:
        script = run.path / SCRIPT_FILE
        if not resume or not script.exists():
            script.write_text(batch_script(spec, run.path, args.workspace, run.run_id, options), encoding="utf-8")
            (run.path / "slurm-options.json").write_text(json.dumps(dataclasses.asdict(options)), encoding="utf-8")
        try:
            job_id = submit(script, resume)
        except UserError as e:
            return _fail(f"{e.message} {e.hint}")
        write_job(run.path, SlurmJob(job_id=job_id, submitted=time.time()))
        status = run.read_status()
        run.write_status(RunStatus(state="starting", pid=None, kind=spec.kind, name=spec.name,
                                   last_seq=status.last_seq if status else -1, step=status.step if status else None))
    print(json.dumps({"run_id": run.run_id, "run_dir": str(run.path), "slurm_job": job_id}), flush=True)
    return 0


def _execute_launched(args, run: RunDirectory, spec, resume: bool) -> int:
    """Several processes (torchrun / deepspeed): start the launcher, show rank 0's events as they land."""
    from engine.launch import launcher_command, launcher_env

    from engine.multinode import multinode

    env = launcher_env(spec, dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8"))
    if multinode(spec):
        return _execute_on_nodes(args, run, spec, resume, env)
    command = launcher_command(spec, args.workspace, run.run_id, resume)
    accept_stop_signals()  # the launcher and its ranks start with the usual mask; each rank installs its handler
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


def _execute_on_nodes(args, run: RunDirectory, spec, resume: bool, env: dict[str, str]) -> int:
    """A run on several hosts (engine.multinode): this process coordinates — it holds the lock, is the
    pid that `cancel` signals (rank 0, wherever it lands, records this process in status.json), passes
    a cancel on to every node, and ends the run itself when its rank 0 died with a node."""
    from engine.multinode import NodeLaunch, lost_node_message

    env = dict(env, ATELIER_ENGINE_PID=str(os.getpid()), ATELIER_ENGINE_PID_STARTED=process_start(os.getpid()) or "",
               ATELIER_ENGINE_HOST=socket.gethostname())
    with open(run.log_path, "ab") as log_file:
        launch = NodeLaunch(spec, run, args.workspace, resume, env, log_file)
    asked: list[str] = []

    def on_signal(signum, _frame) -> None:
        asked.append("cancel" if not asked else "kill")
        threading.Thread(target=launch.send, args=(asked[-1],), daemon=True).start()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    accept_stop_signals()
    try:
        from_seq = run.read_status().last_seq + 1 if resume and run.read_status() else 0
        follow = argparse.Namespace(workspace=args.workspace, run=run.run_id, from_seq=max(0, from_seq), follow=True,
                                    json=getattr(args, "json", False), launcher=launch)
        code = cmd_attach(follow)
        launch.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    finished = [e for e in read_events(run.events_path) if e["type"] == "finished"]
    if finished:
        return {"completed": 0, "cancelled": 130}.get(finished[-1]["status"], 1) if code == 0 else code
    # Rank 0 died (with its node, or killed): the run ends here, naming the node that stopped first.
    status = run.read_status()
    step = status.step if status and status.step is not None else 0
    lost = launch.lost_node()
    cancelled = bool(asked) and lost is None
    events = EventWriter(run.events_path, [json_lines_sink(sys.stdout)] if getattr(args, "json", False) else [])
    if cancelled:
        events.finished("cancelled", {"forced": True, "step": step})
    else:
        node = vars(lost) if lost else {"node": "?", "host": "?", "exit_code": launch.poll()}
        message, hint = lost_node_message(node, len(launch.states), run, step)
        events.finished("failed", {"step": step}, {"type": "node_lost", "message": message, "hint": hint})
        print(f"studio-engine: {message}", file=sys.stderr)
    events.close()
    run.write_status(RunStatus(state="cancelled" if cancelled else "failed", pid=os.getpid(),
                               pid_started=process_start(os.getpid()), last_seq=events.next_seq - 1, kind=spec.kind,
                               name=spec.name, step=step))
    return 130 if cancelled else 1


def cmd_node(args) -> int:
    from engine.multinode import run_node

    node = args.node if args.node is not None else int(os.environ.get("SLURM_NODEID", "0"))
    return run_node(find_run(args.workspace, args.run), node, args.host,
                    args.launcher[1:] if args.launcher[:1] == ["--"] else args.launcher,
                    Path(args.control_file) if args.control_file else None)


def cmd_exec(args) -> int:
    from engine.launch import inside_launcher, needs_launcher
    from engine.runner import execute

    run = find_run(args.workspace, args.run)
    # The lock: handed down by `run --detach`/`resume --detach`; under a launcher, held by the process
    # that started the launcher (every rank runs this command); otherwise this process takes it.
    lock = (RunLock.inherited(args.lock_fd) if args.lock_fd is not None else
            contextlib.nullcontext() if inside_launcher() else run.lock())
    with lock:
        spec = load_spec(run.spec_path)
        if needs_launcher(spec):  # a detached multi-process run: this process becomes the launcher's parent
            return _execute_launched(argparse.Namespace(workspace=args.workspace, json=True), run, spec, args.resume)
        return execute(run, spec, resume=args.resume, echo_stderr=False)


def cmd_resume(args) -> int:
    run = find_run(args.workspace, args.run)
    lock = run.lock()  # before looking at the status: of two resumes of one run, one gets it
    status = run.effective_status()
    if status and status.active:
        lock.release()
        return _fail(f"run {run.run_id} is still running (pid {status.pid}); `studio-engine attach "
                     f"{run.run_id} --follow` shows it.")
    if status and status.state == "completed":
        lock.release()
        return _fail(f"run {run.run_id} has already completed; its model is in {run.output_dir}.")
    spec = _load_spec_or_exit(str(run.spec_path))
    from engine.slurm import read_job

    if read_job(run.path) is not None:  # a Slurm run resumes as a new job of the same script
        from engine.slurm import SlurmOptions

        options = SlurmOptions(**json.loads((run.path / "slurm-options.json").read_text(encoding="utf-8")))
        return _submit(args, run, lock, spec, options, resume=True)
    run.write_status(_starting(spec, os.getpid(), status))
    if args.detach:
        return _spawn_detached(args.workspace, run, lock, resume=True)
    with lock:
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
        # Not a FIFO or a device in a damaged run folder: reading one would never end.
        with open(run.events_path, "rb") if run.events_path.is_file() else open(os.devnull, "rb") as f:
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
        # A multi-process run: its launcher says (status.json names this very process until rank 0 starts).
        launcher = getattr(args, "launcher", None)
        alive = launcher.poll() is None if launcher is not None else status is not None and status.active
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
    from engine.slurm import read_job

    if (job := read_job(run.path)) is not None:
        return _cancel_slurm(run, job, args.force)
    status = run.effective_status()
    if not status or not status.active or not pid_alive(status.pid):
        return _fail(f"run {run.run_id} is not running (state: {status.state if status else 'unknown'}).")
    # Signal only the run's own engine: status.json may be stale (the pid reused since), come from
    # another computer sharing the workspace, or have been edited to point at another process.
    problem = run.engine_problem(status)
    if problem:
        return _fail(f"not signalling anything: {problem}. Run {run.run_id} was not stopped.")
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
    lock = None
    for _ in range(50):
        if not pid_alive(status.pid):
            with contextlib.suppress(UserError):
                lock = run.lock()  # free once the engine and every process of it are gone
            if lock is not None:
                break
        time.sleep(0.1)
    if lock is None:
        return _fail(f"run {run.run_id}'s engine (pid {status.pid}) was killed, but a process of the run still "
                     f"holds its lock after 5 s; `studio-engine cancel {run.run_id} --force` tries again.")
    with lock:
        events = EventWriter(run.events_path)
        events.finished("cancelled", {"forced": True, "step": status.step})
        events.close()
        run.write_status(RunStatus(state="cancelled", pid=status.pid, pid_started=status.pid_started,
                                   last_seq=events.next_seq - 1, kind=status.kind, name=status.name, step=status.step))
    print(f"Stopped run {run.run_id} at once; it resumes from its last checkpoint.")
    return 0


# --- the queue ----------------------------------------------------------------------------------

def cmd_queue_add(args) -> int:
    from engine.queue import JobQueue, engine_slots, ensure_dispatcher, slots_needed

    spec = _load_spec_or_exit(args.spec)
    need = args.gpus if args.gpus is not None else slots_needed(spec)
    slots = engine_slots()
    if need > slots:
        return _fail(f"{args.spec} needs {need} GPU(s) and this engine's queue has {slots}: it would wait forever. "
                     "Lower resources.gpus (or --gpus), or set ATELIER_QUEUE_SLOTS if the engine has more.",
                     EXIT_INVALID)
    if args.run_id is not None:
        check_run_id(args.run_id)
    run = RunDirectory.create(args.workspace, args.run_id or new_run_id(spec.name),
                              spec_to_yaml(spec, args.workspace), RunStatus(state="queued", kind=spec.kind,
                                                                             name=spec.name))
    queue = JobQueue(args.workspace)
    position = queue.add(run.run_id, need)
    ensure_dispatcher(queue)
    print(json.dumps({"run_id": run.run_id, "run_dir": str(run.path), "position": position, "gpus": need}),
          flush=True)
    return 0


def cmd_queue_list(args) -> int:
    from engine.queue import JobQueue, engine_slots, ensure_dispatcher

    queue = JobQueue(args.workspace)
    ensure_dispatcher(queue)  # after a reboot or a killed dispatcher, looking at the queue restarts it
    runs = queue.runs()
    if args.json:
        print(json.dumps({"paused": queue.paused, "slots": engine_slots(), "dispatcher": queue.dispatcher_pid(),
                          "runs": [r.to_json() for r in runs]},
                         indent=1))
        return 0
    print(f"Queue of {args.workspace}: {'paused' if queue.paused else 'active'}, {engine_slots()} slot(s)")
    if not runs:
        print("Nothing waits or runs. Add a run with `studio-engine queue add SPEC`.")
    for r in runs:
        where = f"#{r.position}" if r.state == "waiting" else "running"
        print(f"{where:>8}  {r.run_id:<48} {r.gpus} GPU(s)" + (f"  devices {r.devices}" if r.devices else ""))
    return 0


def cmd_queue_move(args) -> int:
    from engine.queue import JobQueue

    run = find_run(args.workspace, args.run)
    position = JobQueue(args.workspace).move(run.run_id, args.to)
    print(f"Run {run.run_id} is now #{position} in the queue.")
    return 0


def cmd_queue_pause(args) -> int:
    from engine.queue import JobQueue

    JobQueue(args.workspace).set_paused(True)
    print("Queue paused: running runs go on, no waiting run starts until `studio-engine queue resume`.")
    return 0


def cmd_queue_resume(args) -> int:
    from engine.queue import JobQueue, ensure_dispatcher

    queue = JobQueue(args.workspace)
    queue.set_paused(False)
    ensure_dispatcher(queue)
    print("Queue resumed.")
    return 0


def cmd_queue_cancel(args) -> int:
    from engine.queue import RUNNING, JobQueue, mark_cancelled

    run = find_run(args.workspace, args.run)
    found = JobQueue(args.workspace).remove(run.run_id)
    if found is None or found.state == RUNNING:
        # Started already (or never queued): stopped as any run is.
        return cmd_cancel(argparse.Namespace(workspace=args.workspace, run=run.run_id, force=args.force))
    mark_cancelled(run)
    print(f"Run {run.run_id} left the queue before it started (cancelled).")
    return 0


def cmd_queue_dispatch(args) -> int:
    import logging

    from engine.queue import dispatch

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return dispatch(args.workspace)


def add_queue_command(sub) -> None:
    queue = sub.add_parser("queue", help="The engine's job queue: runs wait for free GPUs and start in order.",
                           description="The engine's job queue: runs wait for free GPUs (one slot on an engine "
                                       "without GPUs) and start in order, also while the studio is closed.")
    verbs = queue.add_subparsers(dest="queue_command", required=True, metavar="VERB")
    p = verbs.add_parser("add", help="Queue a spec as a new run (state queued); prints its run id and position.")
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--gpus", type=int, default=None,
                   help="GPUs the run takes from the queue (default: the spec's resources.gpus × nodes; 1 for "
                        "kinds without them; 0 for a sweep)")
    p.add_argument("--run-id", help="use this run id instead of a generated one")
    p.set_defaults(func=cmd_queue_add)
    p = verbs.add_parser("list", help="The running and waiting runs, in the order they start.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_queue_list)
    p = verbs.add_parser("move", help="Move a waiting run to another position (1 = next to start).")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--to", type=int, required=True, metavar="K", help="its new position among the waiting runs")
    p.set_defaults(func=cmd_queue_move)
    p = verbs.add_parser("pause", help="Start no more waiting runs (running ones go on).")
    p.set_defaults(func=cmd_queue_pause)
    p = verbs.add_parser("resume", help="Start waiting runs again (restarts the dispatcher if it is not running).")
    p.set_defaults(func=cmd_queue_resume)
    p = verbs.add_parser("cancel", help="Take a waiting run out of the queue, or stop it if it runs.")
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--force", action="store_true", help="for a running run: stop at once (see `cancel --force`)")
    p.set_defaults(func=cmd_queue_cancel)
    p = verbs.add_parser("_dispatch")  # the dispatcher process, started by the verbs above
    p.set_defaults(func=cmd_queue_dispatch)


def _cancel_slurm(run: RunDirectory, job, force: bool) -> int:
    from engine.slurm import cancel_job, job_active, job_state, request_stop

    state = job_state(job.job_id, max_age_s=0)
    if not job_active(state):
        return _fail(f"run {run.run_id}'s Slurm job {job.job_id} is not running (state: {state['state']}).")
    if not force and state["state"] == "RUNNING":
        request_stop(run.path)
        print(f"Asked run {run.run_id} (Slurm job {job.job_id}) to stop: it saves a checkpoint, then ends as "
              f"cancelled. `studio-engine cancel {run.run_id} --force` cancels the job at once (scancel).")
        return 0
    cancel_job(job.job_id)
    status = run.read_status()
    events = EventWriter(run.events_path)
    events.finished("cancelled", {"forced": True, "step": status.step if status else None})
    events.close()
    run.write_status(RunStatus(state="cancelled", pid=None, last_seq=events.next_seq - 1,
                               kind=status.kind if status else "", name=status.name if status else "",
                               step=status.step if status else None))
    print(f"Cancelled Slurm job {job.job_id} of run {run.run_id} (scancel); it resumes from its last checkpoint.")
    return 0


# --- looking around ----------------------------------------------------------------------------

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
    import importlib

    from engine.errors import UserError
    from engine.kinds import KINDS

    spec = _load_spec_or_exit(args.spec)
    kind = KINDS[spec.kind]
    if kind.preview is None:
        previewed = ", ".join(f"kind: {k.name}" for k in KINDS.values() if k.preview)
        return _fail(f"{args.spec} is a {spec.kind} spec; preview is for {previewed}", EXIT_INVALID)
    module = importlib.import_module(kind.preview)
    try:
        result = module.preview(spec, args.workspace, args.sample)
    except UserError as e:
        return _fail(e.for_terminal())
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
            return _fail("--hash is of the whole schema; give no kind with it", EXIT_INVALID)
        print(schema_hash())
        return 0
    try:
        print(json_schema_text(args.kind))
    except KeyError as e:
        return _fail(e.args[0], EXIT_INVALID)
    return 0


def cmd_validate(args) -> int:
    spec = _load_spec_or_exit(args.spec)
    print(f"{args.spec}: valid {spec.kind} spec '{spec.name}'.")
    return 0


def cmd_import_config(args) -> int:
    from engine.config_import import import_config
    from engine.errors import UserError
    from engine.specs import parse_spec

    try:
        imported = import_config(args.config)
    except UserError as e:
        return _fail(e.for_terminal())
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
        run, lock = _create_run(args.workspace, spec, None)
        with lock:
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
    p.add_argument("--slurm", action="store_true",
                   help="submit the run to Slurm (sbatch) instead of running it here; its batch script is slurm.sh "
                        "in the run folder")
    p.add_argument("--partition", help="Slurm partition (with --slurm; default: the cluster's)")
    p.add_argument("--account", help="Slurm account (with --slurm)")
    p.add_argument("--time", help="Slurm time limit: minutes, H:MM:SS or D-HH:MM:SS (with --slurm)")
    p.add_argument("--stop-before", type=int, default=120, metavar="SECONDS",
                   help="with --slurm: stop gracefully (checkpoint, then requeue) this long before the time limit")
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
                                    "Reward, DPO and KTO specs: each source's format, a pair (or judged answer) as the job lays it out. "
                                    "Evaluate spec: each variant's rendered prompt, as each model reads it.")
    p.add_argument("spec", help=SPEC_HELP)
    p.add_argument("--sample", type=int, default=None,
                   help="documents in a clean dry run (default: preview.sample_documents), records measured (finetune), "
                        "pairs shown (reward, dpo)")
    p.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
    p = add("doctor", cmd_doctor, "Hardware, CUDA and package versions of this engine.")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    p = add("schema", cmd_schema, "Print the JSON schema of job specs (all kinds, or one).")
    p.add_argument("kind", nargs="?", help="one job kind (default: every kind)")
    p.add_argument("--hash", action="store_true",
                   help="print the SHA-256 of the whole schema instead (what `doctor --json` calls schema_hash)")
    p = add("validate", cmd_validate, "Check a spec and report every problem with its field.")
    p.add_argument("spec", help=SPEC_HELP)
    p = add("import-config", cmd_import_config,
            "Turn a LLaMA-Factory or Axolotl training YAML into an Atelier spec, listing each setting mapped and each "
            "not mapped, with why.")
    p.add_argument("config", type=Path, help="the LLaMA-Factory or Axolotl YAML file")
    p.add_argument("--out", type=Path, default=None,
                   help="where to write the spec (default: the config's name with .atelier.yaml)")
    p.add_argument("--json", action="store_true", help="print the spec, the mapped and the unmapped settings as JSON")
    p = add("demo", cmd_demo, "Run the demo pipeline on the embedded default corpus.")
    p.add_argument("--steps", type=int, default=300, help="pretraining steps (default 300)")
    p.add_argument("--finetune-steps", type=int, default=None, help="fine-tuning steps (default 400)")
    p.add_argument("--no-rlhf", dest="rlhf", action="store_false",
                   help="stop after fine-tuning (skip labeling, the reward model, PPO and GRPO)")
    p.add_argument("--json", action="store_true", help=JSON_HELP)
    add_label_commands(sub)
    add_queue_command(sub)
    from engine.serve.command import add_serve_command
    add_serve_command(sub)
    from engine.hub import add_push_command
    add_push_command(sub)
    p = sub.add_parser("_exec")  # the detached child of `run --detach` / `resume --detach`
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--resume", action="store_true")
    p.add_argument("--lock-fd", type=int, default=None)  # the run's lock, taken by the parent and inherited
    p.set_defaults(func=cmd_exec)
    p = sub.add_parser("_node")  # one host of a multi-node run (engine.multinode), started by its coordinator
    p.add_argument("run", help=RUN_HELP)
    p.add_argument("--node", type=int, default=None)  # default: $SLURM_NODEID
    p.add_argument("--host", required=True)
    p.add_argument("--control-file", default=None)  # under Slurm: obey this file, not stdin
    p.add_argument("launcher", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_node)
    return parser


# Commands that train, load models or describe devices: they need torch and transformers, which a
# studio-only install (pipx, the bundle) does not have. `validate`, `schema`, `list`, `labels` do not.
NEEDS_ENGINE_PACKAGES = {"run", "resume", "_exec", "preview", "demo", "serve", "doctor"}


def missing_engine_packages() -> list[str]:
    import importlib.util

    return [name for name in ("torch", "transformers", "datasets") if importlib.util.find_spec(name) is None]


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a name from a damaged file must not stop a listing
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    args.workspace = (args.workspace or default_workspace()).expanduser().resolve()
    if args.workspace.exists() and not args.workspace.is_dir():
        return _fail(f"the workspace {args.workspace} is a file, not a folder: give --workspace (or "
                     "ATELIER_WORKSPACE) the folder that holds runs/, or a new path.", EXIT_INVALID)
    if args.command in NEEDS_ENGINE_PACKAGES and (missing := missing_engine_packages()):
        return _fail(f"this Python ({sys.executable}) has the studio but not the engine: {', '.join(missing)} "
                     f"{'is' if len(missing) == 1 else 'are'} not installed. Install the engine with "
                     f"`pip install \"atelier[engine]\"` (from a clone: `pip install \".[engine]\"`), or point the "
                     f"studio at a Python that has it.")
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is answered below
        return code
    except LookupError as e:
        return _fail(str(e.args[0]))
    except UserError as e:
        return _fail(e.for_terminal(), 1 if isinstance(e, ResourceError) else EXIT_INVALID)
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        full = disk_full_error(e, str(args.workspace))
        if full is None:
            raise
        return _fail(full.for_terminal())


def _reader_gone() -> int:
    """What the reader of stdout left behind (`studio-engine show RUN | head -1`): no traceback, and no
    second error when Python flushes stdout at exit. The exit status of a process ended by SIGPIPE."""
    with contextlib.suppress(OSError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 128 + getattr(signal, "SIGPIPE", 13)


def script() -> None:
    """The `studio-engine` command (and `python -m engine.cli`): `main`, then exit with its status without
    the full garbage collection Python runs over every object at exit — with torch and transformers loaded
    that took 1.5 s after a run had finished, and the process exits freeing its memory whole anyway
    (atexit handlers still run)."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    script()
