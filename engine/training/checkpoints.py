"""The Trainer's checkpoints kept the way a crash cannot spoil: older ones rotated out only after a newer
one is complete, each by a rename and then a delete.

transformers' own rotation (`save_total_limit`) deletes older checkpoints in place with rmtree, and
tells "the newest" by modification time: a crash in the middle left a half-deleted folder whose
trainer_state.json made it look complete. So the arguments leave `save_total_limit` unset and this
callback rotates instead, after the Trainer's save has written the new checkpoint in full (its
trainer_state.json last), with the run directory's rotation (`engine.rundir.rotate_checkpoints`).
"""

from __future__ import annotations

from pathlib import Path

from transformers import TrainerCallback

from engine.rundir import rotate_checkpoints


class KeepCheckpoints(TrainerCallback):
    def __init__(self, folder: Path, keep: int):
        self.folder = Path(folder)
        self.keep = keep

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:  # the process that writes checkpoints' shared files
            rotate_checkpoints(self.folder, self.keep)
