"""Preference pairs packed padding-free: a batch's chosen conversations, then its rejected ones, end to end in
one row with per-record position ids (engine/training/batches.py says why transformers then keeps the records
apart), with what the trainer reads of each record put back where a padded batch has it — a reward model's
score (PackedPairCollator, RecordScores), or a policy's per-token log-probabilities (PackedLogProbs, DPO).

A sequence-classification model applies its score head at every position and keeps the one at the row's
last token that is not padding; in a packed row that would be one score for the whole row. So the head's
output at every position is taken as it is made (a forward hook) and gathered at each record's last token
that is not padding — the same token the model picks in a padded row, so packed and padded scores agree even
where the padding token also ends conversations (pad = eos).
"""

from __future__ import annotations

import torch
from transformers import DataCollatorWithFlattening

from engine.training.batches import IGNORE, Packing


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


class PackedLogProbs:
    """A causal LM that TRL's DPOTrainer calls, run padding-free. TRL pads a batch's [chosen…, rejected…] rows and
    asks the model for per-token log-probabilities (its fused LM head: `fused_lm_head=True`) for the policy and
    for the reference; forward hooks on the module it calls pack those rows into one before the forward and
    lay the log-probabilities out as the padded rows again after it, so TRL's losses, reference pass and
    metrics apply unchanged. A hook, not a subclass of the trainer: the reference pass calls the policy module
    (or the reference model) itself, not the model the trainer hands its loss.

    In a packed row a record's first token follows the previous record's last: it is never a target, as in a
    padded row (its label is -100), so no record is scored from another's context."""

    def __init__(self, module: torch.nn.Module, packing: Packing = Packing(True)):
        self.packing = packing  # batch by batch, a batch it does not pack runs padded as TRL made it
        self._layouts: dict[int, torch.Tensor] = {}
        self._handles = [module.register_forward_pre_hook(self._pack, with_kwargs=True),
                         module.register_forward_hook(self._unpack, with_kwargs=True)]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _pack(self, module, args, kwargs):
        if args or not kwargs.get("fused_lm_head") or kwargs.get("attention_mask") is None \
                or kwargs.get("labels") is None or kwargs.get("position_ids") is not None:
            return None  # generation, or a call this layout does not describe: as it is
        mask = kwargs["attention_mask"].bool()  # TRL pads on the right: each row's record comes first
        if self.packing.batchwise and not self.packing.packs(mask.sum(dim=1).tolist()):
            return None
        del kwargs["attention_mask"]
        # Right-padded, a real token's position in its record is its column: no per-record loop (nor a wait on
        # the device for the lengths).
        positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)[mask]
        labels = kwargs.pop("labels")[mask]
        labels[positions == 0] = IGNORE
        positions = positions[None]
        self._layouts[id(positions)] = mask
        return args, {**kwargs, "input_ids": kwargs["input_ids"][mask][None], "labels": labels[None],
                      "position_ids": positions}

    def _unpack(self, module, args, kwargs, output):
        mask = self._layouts.pop(id(kwargs.get("position_ids")), None)
        if mask is None:
            return None
        # Packed log_probs[t] is the log-probability of packed token t + 1; a padded row's log_probs[r, t] that of
        # its token t + 1. So the packed values, one longer (the row's last token predicts nothing), fill the
        # real tokens of the padded layout, and the last column goes as TRL's shift drops it.
        for name in PER_TOKEN_OUTPUTS:
            packed = getattr(output, name, None)
            if packed is None:
                continue
            padded = packed.new_zeros(mask.shape)
            padded[mask] = torch.cat([packed[0], packed.new_zeros(1)])
            setattr(output, name, padded[:, :-1])
        return output


# The per-token fields of TRL's fused LM head output (FusedCausalLMOutput), one per predicted token.
PER_TOKEN_OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
