"""Loading the training stack (torch, transformers, peft, datasets and what they pull in) at the
start of a run or a preview. Standard library only: the contract modules may use it."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def loading_libraries() -> Iterator[None]:
    """Run the block (imports of the training stack) without cyclic garbage collection, then freeze what
    it loaded.

    Those imports make about half a million objects that live as long as the process, and the collector,
    triggered again and again while they are made, walks the growing heap each time: about 1.2 s of a
    7 s start on a CPU. Frozen, they are left alone by every later collection too (the few thousand
    objects of garbage the imports leave stay with them, a few MB at most).

    What is garbage before the block is collected first, not frozen: the demo runs its stages in one
    process, and a finished stage's trainer and model must not outlive it."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()
