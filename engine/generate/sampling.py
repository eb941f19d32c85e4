"""Sample candidates in batches, each candidate from its own seed.

transformers' `generate(do_sample=True)` draws the tokens of a whole batch from the one global
random stream, so a candidate's text would depend on which other prompts shared its batch, and a
seed could not reproduce it. Here each row draws from its own `torch.Generator`, seeded with the
candidate's seed: `SeededSampler` (a logits processor, our own code for that reason) applies
temperature, top-k and top-p with transformers' warpers, then picks the token by the Gumbel-max
trick with the row's generator, and `generate` runs greedy on that choice. So the seed, the model,
the prompt's tokens and the sampling settings give the same text, alone or in any batch, on the
same device and software — up to floating-point differences between batched and single-row maths
(in fp32 these do not change a choice in practice; in bf16/fp16 they occasionally can).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from engine.specs.generate import Sampling


@dataclass
class Answer:
    text: str
    tokens: int  # tokens generated, the stop token included
    finish: str  # "stop": a stop token ended it; "length": sampling.max_new_tokens did


def candidate_seed(seed: int, model: int, prompt: int, candidate: int) -> int:
    """The seed of candidate `candidate` of prompt `prompt` from model `model` (indices from 0) under
    the spec's `seed`: 31 bits of BLAKE2b of "seed/model/prompt/candidate" (every JSON reader keeps
    it exact; no two candidates of a batch share a stream)."""
    digest = hashlib.blake2b(f"{seed}/{model}/{prompt}/{candidate}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") >> 1


class SeededSampler(LogitsProcessor):
    """Chooses each row's next token with that row's own generator; returns scores that are -inf
    everywhere but the chosen token, so greedy decoding takes it."""

    def __init__(self, seeds: list[int], sampling: Sampling):
        self.seeds = seeds
        self.generators: list[torch.Generator] | None = None
        warpers = [TemperatureLogitsWarper(sampling.temperature)] if sampling.temperature != 1.0 else []
        if sampling.top_k > 0:
            warpers.append(TopKLogitsWarper(sampling.top_k))
        if sampling.top_p < 1.0:
            warpers.append(TopPLogitsWarper(sampling.top_p))
        self.warpers = LogitsProcessorList(warpers)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.generators is None:  # the device is known at the first step
            self.generators = [torch.Generator(device=scores.device).manual_seed(s) for s in self.seeds]
        log_probs = torch.log_softmax(self.warpers(input_ids, scores).float(), dim=-1)
        noise = torch.stack([torch.rand(scores.shape[-1], generator=g, device=scores.device)
                             for g in self.generators])
        choice = (log_probs - torch.log(-torch.log(noise))).argmax(dim=-1, keepdim=True)  # Gumbel-max
        chosen = torch.full_like(scores, float("-inf"))
        return chosen.scatter_(1, choice, 0.0)


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[int]], seeds: list[int | None], sampling: Sampling,
             stops: list[int]) -> list[Answer]:
    """One candidate per prompt (token ids), generated together with left padding; `seeds` has one
    seed per prompt (None each for greedy decoding)."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[0] if stops else 0)
    width = max(len(ids) for ids in prompts)
    device = next(model.parameters()).device
    input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompts], device=device)
    processors = LogitsProcessorList([SeededSampler(seeds, sampling)] if sampling.do_sample else [])
    generated = model.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=sampling.max_new_tokens,
                               do_sample=False, repetition_penalty=sampling.repetition_penalty,
                               eos_token_id=stops or None, pad_token_id=pad, logits_processor=processors)
    candidates = []
    for row in generated[:, width:].tolist():
        end = next((i for i, token in enumerate(row) if token in stops), None)
        answer = row if end is None else row[:end]
        text = tokenizer.decode(answer, skip_special_tokens=True).strip()
        candidates.append(Answer(text, len(row) if end is None else end + 1, "length" if end is None else "stop"))
    return candidates

