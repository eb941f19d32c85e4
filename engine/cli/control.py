"""Following a run (`attach`) and stopping it (`cancel`): only ever the run's own engine, or its Slurm job."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from engine.cli.common import fail, live_sink
from engine.errors import UserError
from engine.protocol import EventReader, EventWriter
from engine.rundir import RunDirectory, RunStatus, find_run, pid_alive


def cmd_attach(args) -> int:
    run = find_run(args.workspace, args.run)
    sink = live_sink(args, sys.stdout)
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
        return fail(f"run {run.run_id} is not running (state: {status.state if status else 'unknown'}).")
    # Signal only the run's own engine: status.json may be stale (the pid reused since), come from
    # another computer sharing the workspace, or have been edited to point at another process.
    problem = run.engine_problem(status)
    if problem:
        return fail(f"not signalling anything: {problem}. Run {run.run_id} was not stopped.")
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
        return fail(f"run {run.run_id}'s engine (pid {status.pid}) was killed, but a process of the run still "
                     f"holds its lock after 5 s; `studio-engine cancel {run.run_id} --force` tries again.")
    with lock:
        events = EventWriter(run.events_path)
        events.finished("cancelled", {"forced": True, "step": status.step})
        events.close()
        run.write_status(RunStatus(state="cancelled", pid=status.pid, pid_started=status.pid_started,
                                   last_seq=events.next_seq - 1, kind=status.kind, name=status.name, step=status.step))
    print(f"Stopped run {run.run_id} at once; it resumes from its last checkpoint.")
    return 0


def _cancel_slurm(run: RunDirectory, job, force: bool) -> int:
    from engine.slurm import cancel_job, job_active, job_state, request_stop

    state = job_state(job.job_id, max_age_s=0)
    if not job_active(state):
        return fail(f"run {run.run_id}'s Slurm job {job.job_id} is not running (state: {state['state']}).")
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
