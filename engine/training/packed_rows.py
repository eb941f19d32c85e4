"""A padded batch run as one packed row. Each row of the batch holds one record whose real tokens are contiguous:
padded on the right (TRL's preference collators), or a left-padded prompt followed by a right-padded answer (GRPO's
and PPO's batches). Packing lays the real tokens end to end in one row with per-record position ids
(engine/training/batches.py says why transformers then keeps the records apart); unpacking puts what the model made
at each token back where the padded batch has it, so the code that reads padded rows reads them unchanged.

A record's positions count its real tokens from 0, as `generate` numbers a left-padded prompt. A padded forward that
numbers columns instead gives a left-padded record other positions: the same attention for rotary models (it
depends only on the distance between positions), a different input for learned absolute positions (GPT-2), where
the packed row gives what the record gives alone.
"""

from __future__ import annotations

import torch

from engine.training.batches import IGNORE, Packing


class PackedRows:
    """The layout of a padded batch (`attention_mask`, [rows, width]) and its packed row."""

    def __init__(self, attention_mask: torch.Tensor):
        self.mask = attention_mask.bool()
        self.positions = (self.mask.cumsum(dim=1) - 1)[self.mask][None]  # [1, tokens]

    def pack(self, values: torch.Tensor) -> torch.Tensor:
        """[rows, width, …] → [1, tokens, …]: the real tokens' values, row after row."""
        return values[self.mask][None]

    def unpack(self, packed: torch.Tensor, from_column: int = 0) -> torch.Tensor:
        """`packed` ([1, n, …]), made at the real tokens in columns `from_column` on, as padded rows
        [rows, width − from_column, …] with zeros at padding."""
        where = self.mask[:, from_column:]
        padded = packed.new_zeros((*where.shape, *packed.shape[2:]))
        padded[where] = packed[0]
        return padded

    def tokens_from(self, column: int) -> torch.Tensor:
        """The indices in the packed row of the real tokens in columns `column` on (a model's `logits_to_keep`)."""
        kept = torch.zeros_like(self.mask)
        kept[:, column:] = True
        return kept[self.mask].nonzero().squeeze(1)


class PackedLogProbs:
    """A causal LM that TRL's DPO, KTO and GRPO trainers call, run padding-free. They pad a batch's records and ask
    the model for per-token log-probabilities (TRL's fused LM head: `fused_lm_head=True`), for the policy and for
    the reference; forward hooks on the module they call pack those rows into one before the forward and lay the
    log-probabilities out as the padded rows again after it, so TRL's losses, reference pass and metrics apply
    unchanged. A hook, not a subclass of the trainer: the reference pass calls the policy module (or the reference
    model) itself, not the model the trainer hands its loss.

    In a packed row a record's first token follows the previous record's last: it is never a target, as in a
    padded row (its label is -100), so no record is scored from another's context."""

    def __init__(self, module: torch.nn.Module, packing: Packing = Packing(True)):
        self.packing = packing  # batch by batch, a batch it does not pack runs padded as TRL made it
        self._layouts: dict[int, PackedRows] = {}
        self._handles = [module.register_forward_pre_hook(self._pack, with_kwargs=True),
                         module.register_forward_hook(self._unpack, with_kwargs=True)]

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _pack(self, module, args, kwargs):
        if args or not kwargs.get("fused_lm_head") or kwargs.get("attention_mask") is None \
                or kwargs.get("labels") is None or kwargs.get("position_ids") is not None:
            return None  # generation, or a call this layout does not describe: as it is
        if not self.packing.packs_padded(kwargs["attention_mask"]):
            return None
        rows = PackedRows(kwargs.pop("attention_mask"))
        labels = rows.pack(kwargs.pop("labels"))
        labels[rows.positions == 0] = IGNORE
        self._layouts[id(rows.positions)] = rows
        # Without a cache: with one, transformers reads the packed row as one sequence.
        return args, {**kwargs, "input_ids": rows.pack(kwargs["input_ids"]), "labels": labels,
                      "position_ids": rows.positions, "use_cache": False}

    def _unpack(self, module, args, kwargs, output):
        rows = self._layouts.pop(id(kwargs.get("position_ids")), None)
        if rows is None:
            return None
        # Packed log_probs[t] is the log-probability of packed token t + 1; a padded row's log_probs[r, c] that of
        # its token at column c + 1. So the packed values, one longer (the row's last token predicts nothing), fill
        # the real tokens of the padded layout, and the last column goes as TRL's shift drops it.
        for name in PER_TOKEN_OUTPUTS:
            packed = getattr(output, name, None)
            if packed is None:
                continue
            setattr(output, name, rows.unpack(torch.cat([packed, packed.new_zeros(1, 1)], dim=1))[:, :-1])
        return output


# The per-token fields of TRL's fused LM head output (FusedCausalLMOutput), one per predicted token.
PER_TOKEN_OUTPUTS = ("log_probs", "entropy", "log_sum_sq_probs", "mean_logits", "is_top1", "label_mask")
