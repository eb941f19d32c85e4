"""Pairwise accuracy and mean margin of a reward model on held-out preference pairs.

Measured over every held-out pair (TRL's own eval metrics are means of per-batch means, which
weigh a short last batch too much). The score of a sequence is the head's output at its last
non-padding token, as the model's forward computes it for training.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class PairScorer:
    """Scores the held-out pairs ({"chosen_ids", "rejected_ids"}) in batches of `batch_size` pairs."""

    def __init__(self, rows: list[dict], pad_token_id: int, batch_size: int):
        self.rows = rows
        self.pad = pad_token_id
        self.batch_size = batch_size

    def measure(self, model) -> dict[str, float]:
        """{"pairwise_accuracy": share of pairs with score(chosen) > score(rejected), "mean_margin": mean of
        score(chosen) - score(rejected), "loss": the Bradley–Terry loss}; {} without held-out pairs."""
        if not self.rows:
            return {}
        margins = torch.cat([self._margins(model, self.rows[i:i + self.batch_size])
                             for i in range(0, len(self.rows), self.batch_size)])
        return {"pairwise_accuracy": (margins > 0).float().mean().item(), "mean_margin": margins.mean().item(),
                "loss": -F.logsigmoid(margins).mean().item()}

    def scores(self, model, sequences: list[list[int]]) -> torch.Tensor:
        """One score per sequence of token ids (float32, on the CPU)."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        width = max(len(s) for s in sequences)
        ids = torch.full((len(sequences), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(sequences), width), dtype=torch.long)
        for i, s in enumerate(sequences):
            ids[i, :len(s)] = torch.tensor(s)
            mask[i, :len(s)] = 1
        try:
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
        finally:
            model.train(was_training)
        return logits.squeeze(-1).float().cpu()

    def _margins(self, model, rows: list[dict]) -> torch.Tensor:
        scores = self.scores(model, [r["chosen_ids"] for r in rows] + [r["rejected_ids"] for r in rows])
        chosen, rejected = scores.chunk(2)
        return chosen - rejected
