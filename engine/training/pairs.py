"""A reward model's preference pairs packed padding-free: a batch's chosen conversations, then its rejected ones,
end to end in one row with per-record position ids (engine/training/batches.py says why transformers then keeps
the records apart), each record's score read where a padded batch has it (PackedPairCollator, RecordScores). A
policy's padded rows run packed through engine/training/packed_rows.py.

A sequence-classification model applies its score head at every position and keeps the one at the row's
last token that is not padding; in a packed row that would be one score for the whole row. So the head's
output at every position is taken as it is made (a forward hook) and gathered at each record's last token
that is not padding — the same token the model picks in a padded row, so packed and padded scores agree even
where the padding token also ends conversations (pad = eos).
"""

from __future__ import annotations

import torch
from transformers import DataCollatorWithFlattening

from engine.training.batches import Packing


class PackedPairCollator:
    """Pairs ({"chosen_ids", "rejected_ids"}, optionally "margin") as one packed row: every chosen record, then
    every rejected one, so the scores split in halves as in TRL's padded batch. `score_positions` holds where
    each record's score is read; `attention_mask` (all ones) is there for whoever counts the batch's tokens and
    is never given to the model, which reads packing from the position ids only without one. A batch that
    `packing` does not pack is TRL's padded one (no `score_positions`)."""

    def __init__(self, pad_token_id: int | None, flash_attention: bool = False, packing: Packing = Packing(True)):
        self.flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=flash_attention)
        self.pad = pad_token_id
        self.packing = packing

    def __call__(self, features: list[dict]) -> dict:
        records = [f["chosen_ids"] for f in features] + [f["rejected_ids"] for f in features]
        if not self.packing.packs([len(r) for r in records]):  # TRL's padded batch, scored by the model's pooling
            from trl.trainer.reward_trainer import DataCollatorForPreference

            return DataCollatorForPreference(pad_token_id=self.pad)(features)
        batch = self.flatten([{"input_ids": list(r)} for r in records])
        batch.pop("labels", None)  # a classifier given labels computes a loss of its own
        batch["score_positions"] = torch.tensor(score_positions(records, self.pad))
        batch["attention_mask"] = torch.ones_like(batch["input_ids"])
        if "margin" in features[0]:
            batch["margin"] = torch.tensor([f["margin"] for f in features], dtype=torch.float)
        return batch


def score_positions(records: list[list[int]], pad_token_id: int | None) -> list[int]:
    """The index in the packed row of each record's last token that is not padding (its first token where
    all are padding, as the model's argmax picks in a padded row)."""
    positions, start = [], 0
    for record in records:
        kept = [i for i, token in enumerate(record) if token != pad_token_id]
        positions.append(start + (kept[-1] if kept else 0))
        start += len(record)
    return positions


class RecordScores:
    """`model` called on a packed row, answering as if called on padded rows: its output's `logits` are one
    score per record ([records, labels]), read from the score head's output at `positions`."""

    def __init__(self, model, head: torch.nn.Module, positions: torch.Tensor):
        self.model, self.head, self.positions = model, head, positions

    def __call__(self, **inputs):
        inputs.pop("attention_mask", None)
        inputs["use_cache"] = False  # with a cache transformers reads the row as one sequence
        made = []
        hook = self.head.register_forward_hook(lambda module, args, output: made.append(output))
        try:
            outputs = self.model(**inputs)
        finally:
            hook.remove()
        outputs.logits = made[-1][0, self.positions.to(made[-1].device)]
        return outputs
