"""`run`, `resume` and the processes they start: here, detached, under a launcher, on several nodes, or
as a Slurm job."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.cli.common import EXIT_INVALID, fail, live_sink, load_spec_or_exit
from engine.cli.control import cmd_attach
from engine.detached import accept_stop_signals, start_detached
from engine.errors import UserError, disk_full_error
from engine.processes import process_start
from engine.protocol import EventWriter, json_lines_sink, read_events
from engine.rundir import RunDirectory, RunLock, RunStatus, check_run_id, find_run, new_run_id
from engine.specs import load_spec, spec_to_yaml


def _starting(spec, pid: int, status: RunStatus | None = None) -> RunStatus:
    """The status of a run whose engine process `pid` is starting (carrying on from `status` on resume)."""
    return RunStatus(state="starting", pid=pid, pid_started=process_start(pid), kind=spec.kind, name=spec.name,
                     last_seq=status.last_seq if status else -1, step=status.step if status else None)


def create_run(workspace: Path, spec, run_id: str | None) -> tuple[RunDirectory, RunLock]:
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


def execute_here(args, run: RunDirectory, spec, resume: bool) -> int:
    from engine.launch import needs_launcher
    from engine.runner import execute

    if needs_launcher(spec):
        return _execute_launched(args, run, spec, resume)
    pretty = not args.json and sys.stdout.isatty()
    code = execute(run, spec, resume=resume, echo_stderr=not pretty,
                   sink_factory=lambda stream: live_sink(args, stream))
    if pretty:
        print(f"Run folder: {run.path}")
        if code == 130:
            print(f"Resume with: studio-engine resume {run.run_id}")
    return code


def cmd_run(args) -> int:
    if args.run_id is not None:
        check_run_id(args.run_id)
    spec = load_spec_or_exit(args.spec)
    if spec.kind == "sweep" and isinstance(spec.base, str):
        spec = _sweep_with_base_inline(spec, Path(args.spec).parent, args.workspace)
    options = _slurm_options(args) if args.slurm else None
    run, lock = create_run(args.workspace, spec, args.run_id)
    if options is not None:
        return _submit(args, run, lock, spec, options, resume=False)
    if args.detach:
        return _spawn_detached(args.workspace, run, lock, resume=False)
    with lock:
        return execute_here(args, run, spec, resume=False)


def _sweep_with_base_inline(spec, spec_folder: Path, workspace: Path):
    """The sweep with its base spec file read now (beside the sweep's file, then in the workspace) and
    kept inline in the run's spec: the run reads the same base wherever it runs and whenever it resumes."""
    from engine.jobs.sweep import load_base

    try:
        return spec.model_copy(update={"base": load_base(spec, [spec_folder, workspace])})
    except UserError as e:
        raise SystemExit(fail(e.for_terminal(), EXIT_INVALID)) from None


def _slurm_options(args):
    from engine.slurm import SlurmOptions, slurm_available

    options = SlurmOptions(partition=args.partition or "", account=args.account or "", time=args.time or "",
                           stop_before_s=args.stop_before)
    problems = options.problems() + [p for p in [slurm_available()] if p]
    if problems:
        raise SystemExit(fail(" ".join(problems), EXIT_INVALID))
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
            return fail(f"{e.message} {e.hint}")
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
        return fail(f"the launcher exited with {process.returncode} before the run finished; see {run.log_path}")
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
        return fail(f"run {run.run_id} is still running (pid {status.pid}); `studio-engine attach "
                     f"{run.run_id} --follow` shows it.")
    if status and status.state == "completed":
        lock.release()
        return fail(f"run {run.run_id} has already completed; its model is in {run.output_dir}.")
    spec = load_spec_or_exit(str(run.spec_path))
    from engine.slurm import read_job

    if read_job(run.path) is not None:  # a Slurm run resumes as a new job of the same script
        from engine.slurm import SlurmOptions

        options = SlurmOptions(**json.loads((run.path / "slurm-options.json").read_text(encoding="utf-8")))
        return _submit(args, run, lock, spec, options, resume=True)
    run.write_status(_starting(spec, os.getpid(), status))
    if args.detach:
        return _spawn_detached(args.workspace, run, lock, resume=True)
    with lock:
        return execute_here(args, run, spec, resume=True)
