"""`studio-engine serve`: registers the command; the server itself is imported when it runs (torch).

stdin and stdout only, no sockets: the same command serves the studio locally (QProcess) and over
an SSH engine profile (the system `ssh` client's pipes). fd 1 carries protocol lines and nothing
else; whatever libraries print goes to stderr, the engine's log.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import sys
from typing import TextIO

from engine.cli.common import fail

DEFAULT_MAX_ACTIVE = 4


def add_serve_command(sub) -> None:
    """Registers `serve` on the engine CLI's subparsers."""
    description = ("Serve models for the playground: a long-lived process reading JSON-line requests on stdin "
                   "(load, generate, cancel, unload, models, shutdown) and answering on stdout, streaming each "
                   "token as it is generated. docs/protocol.md (serve) describes every message.")
    p = sub.add_parser("serve", help="Long-lived inference process (JSON lines on stdin/stdout).",
                       description=description)
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                   help="where models run (default auto: CUDA, then Apple MPS, then the CPU)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default="auto",
                   help="weights' precision (default auto: bf16 where the GPU supports it, else fp16 on CUDA, "
                        "fp32 elsewhere)")
    p.add_argument("--memory-budget-gib", type=float, default=None,
                   help="memory the loaded models' weights may take together; past it the least recently used "
                        "idle model is unloaded (default: 90%% of the GPU's memory, or half of this computer's RAM)")
    p.add_argument("--max-active", type=int, default=DEFAULT_MAX_ACTIVE,
                   help=f"generations that run at once, taking turns token by token; more wait in arrival order "
                        f"(default {DEFAULT_MAX_ACTIVE})")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.max_active < 1:
        return fail(f"serve: --max-active must be at least 1; got {args.max_active}.")
    if args.memory_budget_gib is not None and args.memory_budget_gib <= 0:
        return fail(f"serve: --memory-budget-gib must be more than 0; got {args.memory_budget_gib}.")
    protocol = protect_stdout()
    _configure_logging()
    from engine.devices import resolve
    from engine.errors import ResourceError
    from engine.serve.models import GIB, ModelPool
    from engine.serve.protocol import MessageWriter
    from engine.serve.server import Server
    from engine.specs.base import InferenceResources

    writer = MessageWriter(protocol)
    try:
        placement = resolve(InferenceResources(device=args.device, precision=args.precision))
    except ResourceError as e:
        # The message names a spec's fields; serve has command-line options instead.
        e.message, e.hint = (re.sub(r"`resources\.(device|precision): (\w+)`", r"`--\1 \2`", text)
                             .replace("The spec asks for", "serve was started with") for text in (e.message, e.hint))
        writer.error(e)  # the client waiting for `ready` learns why it will not come
        return fail(f"serve: {e.message} {e.hint}")
    budget = args.memory_budget_gib * GIB if args.memory_budget_gib else default_budget_bytes(placement.device)
    pool = ModelPool(placement, int(budget), args.workspace)

    def interrupt(signum, frame):
        raise KeyboardInterrupt  # the main thread stops reading, cancels the generations, says shutdown

    signal.signal(signal.SIGTERM, interrupt)
    return Server(writer, pool, args.max_active).serve(sys.stdin.buffer)


def protect_stdout() -> TextIO:
    """The stream protocol lines go to (the real stdout); fd 1 itself is pointed at stderr, so what a
    library prints, through Python or straight to the descriptor, cannot corrupt the protocol."""
    sys.stdout.flush()
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="replace", newline="\n")
    os.dup2(2, 1)
    return protocol


def default_budget_bytes(device: str) -> int:
    import psutil
    import torch

    if device == "cuda":
        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory * 0.9)
    return int(psutil.virtual_memory().total * 0.5)


def _configure_logging() -> None:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


