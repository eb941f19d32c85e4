"""`queue …`: runs that wait for free GPUs on this engine and start in order (engine.queue)."""

from __future__ import annotations

import argparse
import json

from engine.cli.common import EXIT_INVALID, RUN_HELP, SPEC_HELP, fail, load_spec_or_exit
from engine.cli.control import cmd_cancel
from engine.rundir import RunDirectory, RunStatus, check_run_id, find_run, new_run_id
from engine.specs import spec_to_yaml


def cmd_queue_add(args) -> int:
    from engine.queue import JobQueue, engine_slots, ensure_dispatcher, slots_needed

    spec = load_spec_or_exit(args.spec)
    need = args.gpus if args.gpus is not None else slots_needed(spec)
    slots = engine_slots()
    if need > slots:
        return fail(f"{args.spec} needs {need} GPU(s) and this engine's queue has {slots}: it would wait forever. "
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
