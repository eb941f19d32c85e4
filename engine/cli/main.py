"""`studio-engine`: everything the studio can do, from a terminal (DESIGN §4). The parser of every
command is here, the commands in the modules beside it.

Import-light at module level: `schema`, `validate`, `list` answer without loading torch; the
verbs that train import the runner inside their functions.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import signal
import sys
from pathlib import Path

from engine import __version__
from engine.cli.common import DETACH_HELP, EXIT_INVALID, JSON_HELP, RUN_HELP, SPEC_HELP, fail
from engine.cli.control import cmd_attach, cmd_cancel
from engine.cli.inspection import (
    cmd_demo, cmd_doctor, cmd_import_config, cmd_list, cmd_preview, cmd_schema, cmd_show, cmd_validate,
)
from engine.cli.queue_commands import add_queue_command
from engine.cli.runs import cmd_exec, cmd_node, cmd_resume, cmd_run
from engine.errors import ResourceError, UserError, disk_full_error
from engine.rundir import default_workspace


def add_label_commands(sub) -> None:
    """`labels …` (queues, import, export, agreement) and `label-server` (the web labeling page)."""
    from engine.labeling.commands import add_labels_command
    from engine.labeling.web import add_label_server_command

    add_labels_command(sub)
    add_label_server_command(sub)



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
        return fail(f"the workspace {args.workspace} is a file, not a folder: give --workspace (or "
                     "ATELIER_WORKSPACE) the folder that holds runs/, or a new path.", EXIT_INVALID)
    if args.command in NEEDS_ENGINE_PACKAGES and (missing := missing_engine_packages()):
        return fail(f"this Python ({sys.executable}) has the studio but not the engine: {', '.join(missing)} "
                     f"{'is' if len(missing) == 1 else 'are'} not installed. Install the engine with "
                     f"`pip install \"atelier[engine]\"` (from a clone: `pip install \".[engine]\"`), or point the "
                     f"studio at a Python that has it.")
    try:
        code = args.func(args)
        sys.stdout.flush()  # here, not at exit: a reader that went away is answered below
        return code
    except LookupError as e:
        return fail(str(e.args[0]))
    except UserError as e:
        return fail(e.for_terminal(), 1 if isinstance(e, ResourceError) else EXIT_INVALID)
    except BrokenPipeError:
        return _reader_gone()
    except KeyboardInterrupt:
        return 130
    except OSError as e:
        full = disk_full_error(e, str(args.workspace))
        if full is None:
            raise
        return fail(full.for_terminal())


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

