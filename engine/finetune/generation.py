"""Answer held-out records with the model (greedy) and score the answers against their references."""

from __future__ import annotations

import torch

from engine.finetune.metrics import exact_match, generation_metrics
from engine.finetune.rendering import prompt_ids, stop_token_ids
from engine.finetune.tool_calls import calls_match

BATCH = 16


class GenerationScorer:
    def __init__(self, tokenizer, template: str | None, records: list[dict], max_new_tokens: int):
        self.tokenizer, self.max_new_tokens = tokenizer, max_new_tokens
        # Only records with a reference answer can be scored (plain text has none).
        self.records = [r for r in records if r.get("reference")]
        # Encoded exactly as training encodes the same conversation, so the model sees what it learned.
        self.prompts = [prompt_ids(r, tokenizer, template) for r in self.records]
        self.stops = stop_token_ids(tokenizer, template)

    @torch.no_grad()
    def answers(self, model) -> list[str]:
        """Greedy answers in record order; each stops at end-of-turn or end-of-text."""
        was_training = model.training
        model.eval()
        pad = self.tokenizer.pad_token_id
        out: list[str] = []
        try:
            for start in range(0, len(self.prompts), BATCH):
                batch = self.prompts[start:start + BATCH]
                width = max(len(ids) for ids in batch)
                # Left padding: every prompt ends at the same position, where generation continues.
                input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in batch], device=model.device)
                mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in batch], device=model.device)
                generated = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=self.max_new_tokens,
                                           do_sample=False, eos_token_id=self.stops or None, pad_token_id=pad)
                out.extend(self.tokenizer.batch_decode(generated[:, width:], skip_special_tokens=True))
        finally:
            model.train(was_training)
        return [answer.strip() for answer in out]

    def score(self, model) -> dict[str, float]:
        """The metrics; the answers stay in `last_answers` for the run's sample events.

        An answer expected to call tools is exact when it makes the same calls (names and argument
        values, however spaced or ordered); call_accuracy is that share over those records alone."""
        if not self.records:
            return {}
        self.last_answers = self.answers(model)
        metrics = generation_metrics(self.last_answers, [r["reference"] for r in self.records])
        calls = [calls_match(a, r["reference_calls"]) for a, r in zip(self.last_answers, self.records)
                 if r.get("reference_calls")]
        if calls:
            exact = [calls_match(a, r["reference_calls"]) if r.get("reference_calls")
                     else exact_match(a, r["reference"]) for a, r in zip(self.last_answers, self.records)]
            metrics["exact_match"] = sum(exact) / len(exact)
            metrics["call_accuracy"] = sum(calls) / len(calls)
        return metrics

    def samples(self, count: int = 3) -> list[tuple[str, str]]:
        """(prompt, "answer  ← expected: reference") for the first records of the last scoring."""
        answers = getattr(self, "last_answers", [])
        return [(self.tokenizer.decode(prompt, skip_special_tokens=True).strip(),
                 f"{answer}   (expected: {record['reference']})")
                for prompt, answer, record in zip(self.prompts[:count], answers[:count], self.records[:count])]
