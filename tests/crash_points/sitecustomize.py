"""Kills the engine process at a chosen point, for the tests of what a crash leaves and how a resume
repairs it. On PYTHONPATH only in those tests (Python imports `sitecustomize` at start-up, before the
engine): with ATELIER_TEST_KILL_AT=POINT the process SIGKILLs itself at that point.

POINT is one of:
- a folder name (`model`, `adapter`, `checkpoint-4`, …): when a folder of that name has been written in
  full into its temporary folder and is about to be renamed into place — the last instant of a save,
  the one a crash must never turn into a complete-looking output;
- `checkpoint-weights:N`: inside the Trainer's save of checkpoint-N, its weights written, before its
  optimizer, scheduler, random states and trainer_state.json;
- `checkpoint-state:N`: inside the same save, half of checkpoint-N's trainer_state.json written — the
  file whose presence used to mark a checkpoint complete;
- `rotation`: inside checkpoint rotation, the older checkpoint renamed aside and half deleted;
- `label-items`: inside a label import's transaction, its items written, before the commit.
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

_KILL_AT = os.environ.pop("ATELIER_TEST_KILL_AT", None)  # popped: processes this one starts must not die too


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _in_atomic_directory(name: str) -> None:
    from engine import rundir

    original = rundir.atomic_directory

    @contextlib.contextmanager
    def dying(target):
        with original(target) as tmp:
            yield tmp
            if Path(target).name == name:
                _die()

    rundir.atomic_directory = dying


def _in_checkpoint_save(part: str, step: str) -> None:
    import transformers

    folder = f"checkpoint-{step}"
    if part == "weights":
        original_save = transformers.Trainer._save_optimizer_and_scheduler

        def dying_save(self, output_dir):
            if Path(output_dir).name == folder:
                _die()
            return original_save(self, output_dir)

        transformers.Trainer._save_optimizer_and_scheduler = dying_save
    else:
        original_state = transformers.TrainerState.save_to_json

        def dying_state(self, json_path):
            if Path(json_path).parent.name == folder:
                original_state(self, json_path)
                text = Path(json_path).read_text(encoding="utf-8")
                Path(json_path).write_text(text[: len(text) // 2], encoding="utf-8")
                _die()
            return original_state(self, json_path)

        transformers.TrainerState.save_to_json = dying_state


def _in_rotation() -> None:
    import shutil

    from engine import rundir

    class DyingShutil:
        """shutil, except that deleting a checkpoint renamed aside stops halfway."""

        def __getattr__(self, name):
            return getattr(shutil, name)

        @staticmethod
        def rmtree(path, *args, **kwargs):
            if Path(path).name.endswith(".deleting"):
                files = sorted(p for p in Path(path).rglob("*") if p.is_file())
                for file in files[: len(files) // 2]:
                    file.unlink()
                _die()
            return shutil.rmtree(path, *args, **kwargs)

    rundir.shutil = DyingShutil()


def _in_label_import() -> None:
    from engine.labeling.store import LabelStore

    original = LabelStore.add_items

    def dying_add_items(self, *args, **kwargs):
        write = self._write

        @contextlib.contextmanager
        def dying_write():
            with write() as db:
                yield db
                _die()  # the items are written; the transaction is not committed

        self._write = dying_write
        return original(self, *args, **kwargs)

    LabelStore.add_items = dying_add_items


if _KILL_AT:
    point, _, argument = _KILL_AT.partition(":")
    if point in ("checkpoint-weights", "checkpoint-state"):
        _in_checkpoint_save(point.split("-")[1], argument)
    elif point == "rotation":
        _in_rotation()
    elif point == "label-items":
        _in_label_import()
    else:
        _in_atomic_directory(_KILL_AT)
