"""Rollouts: the policy answers a batch of prompts; each answer gets the policy's and the reference's
log-probabilities of its tokens, the value model's values, and the reward model's score.

Sampling goes through transformers' `generate` with the generate job's `SeededSampler`: every
answer draws from its own generator, seeded from (seed, iteration, row), so an iteration's answers
are the same on a resumed run. The log-probabilities are those of the distribution sampled from:
the logits divided by the temperature (top-k and top-p are not applied to them; see the job's
warning when they are set).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from transformers import LogitsProcessorList

from engine.generate.prompts import Prompt
from engine.generate.sampling import SeededSampler
from engine.rlhf.ppo_math import entropy_from_logits, masked_mean
from engine.rlhf.ppo_models import PPOModels
from engine.rlhf.reward_data import conversation_ids
from engine.specs.generate import Sampling
from engine.training.batches import Packing
from engine.training.packed_rows import PackedRows


@dataclass
class Answers:
    """A batch of prompts and the policy's answers to them."""

    prompts: list[Prompt]
    query: torch.Tensor  # (B, Q) prompt ids, left-padded so that every prompt ends at column Q
    query_mask: torch.Tensor  # (B, Q) 1 on prompt tokens
    response: torch.Tensor  # (B, R) answer ids, the stop token included, pad after it
    mask: torch.Tensor  # (B, R) float, 1 on answer tokens
    texts: list[str]  # the answers as text, without the stop token
    stopped: list[bool]  # ended by a stop token (else cut at the length limit)

    def __len__(self) -> int:
        return len(self.prompts)

    def inputs(self, rows: torch.Tensor | slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input_ids, attention_mask, position_ids) of prompt + answer for `rows`."""
        ids = torch.cat([self.query[rows], self.response[rows]], dim=1)
        attention = torch.cat([self.query_mask[rows], self.mask[rows].long()], dim=1)
        return ids, attention, (attention.cumsum(1) - 1).clamp(min=0)


@dataclass
class Rollout(Answers):
    """Answers with everything PPO's update needs."""

    logprobs: torch.Tensor  # (B, R) log π(a_t) under the policy that sampled
    ref_logprobs: torch.Tensor  # (B, R) under the reference
    values: torch.Tensor  # (B, R) value of the state before each answer token
    scores: torch.Tensor  # (B,) the reward model's score (minus the missing-end penalty)
    entropy: float  # mean entropy per answer token (nats)


def row_seed(seed: int, iteration: int, row: int) -> int:
    """The sampling seed of answer `row` of `iteration` (31 bits of BLAKE2b, like the generate job's)."""
    digest = hashlib.blake2b(f"ppo/{seed}/{iteration}/{row}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") >> 1


@torch.no_grad()
def answer(models: PPOModels, prompts: list[Prompt], encoded: list[list[int]], seeds: list[int] | None,
           sampling: Sampling) -> Answers:
    """The policy's answers (greedy when `seeds` is None), generated `sampling.batch_size` at a time."""
    tokenizer, stops = models.tokenizer, models.stops
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (stops[0] if stops else 0)
    device = next(models.policy.parameters()).device
    width = max(len(ids) for ids in encoded)
    query = torch.tensor([[pad] * (width - len(ids)) + ids for ids in encoded], device=device)
    query_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in encoded], device=device)
    rows: list[list[int]] = []
    for start in range(0, len(encoded), sampling.batch_size):
        part = slice(start, start + sampling.batch_size)
        processors = LogitsProcessorList([SeededSampler(seeds[part], sampling)] if seeds is not None else [])
        generated = models.policy.generate(
            input_ids=query[part], attention_mask=query_mask[part], max_new_tokens=sampling.max_new_tokens,
            do_sample=False, repetition_penalty=sampling.repetition_penalty, eos_token_id=stops or None,
            pad_token_id=pad, logits_processor=processors)
        rows.extend(generated[:, width:].tolist())
    length = max(1, max(len(r) for r in rows))
    response = torch.full((len(rows), length), pad, dtype=torch.long, device=device)
    mask = torch.zeros((len(rows), length), device=device)
    texts, stopped = [], []
    for i, row in enumerate(rows):
        end = next((t for t, token in enumerate(row) if token in stops), None)
        kept = row if end is None else row[:end + 1]
        response[i, :len(kept)] = torch.tensor(kept, dtype=torch.long)
        mask[i, :len(kept)] = 1.0
        texts.append(tokenizer.decode(row if end is None else row[:end], skip_special_tokens=True).strip())
        stopped.append(end is not None)
    return Answers(prompts, query, query_mask, response, mask, texts, stopped)


def token_logprobs(model, answers: Answers, rows, temperature: float, with_entropy: bool = False,
                   packing: Packing = Packing(False)) -> tuple[torch.Tensor, torch.Tensor | None]:
    """log π(a_t) of each answer token under `model` (B, R), and the entropy of each position's
    distribution when asked; the rows run as one packed row where `packing` packs them."""
    ids, attention, positions = answers.inputs(rows)
    length = answers.response.shape[1]
    # Only the positions that predict answer tokens: the one before the answer, and the answer's but its last.
    first = ids.shape[1] - (length + 1)
    packed = packed_rows(attention, packing)
    if packed is None:
        logits = model(input_ids=ids, attention_mask=attention, position_ids=positions, use_cache=False,
                       logits_to_keep=length + 1).logits
    else:
        logits = model(input_ids=packed.pack(ids), position_ids=packed.positions, use_cache=False,
                       logits_to_keep=packed.tokens_from(first)).logits
        logits = packed.unpack(logits, from_column=first)
    logits = logits[:, :-1].float() / temperature
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, answers.response[rows].unsqueeze(-1)).squeeze(-1)
    return logprobs, entropy_from_logits(logits) if with_entropy else None


def token_values(value_model, answers: Answers, rows, packing: Packing = Packing(False)) -> torch.Tensor:
    """The value of the state before each answer token (B, R)."""
    ids, attention, positions = answers.inputs(rows)
    width = answers.query.shape[1]
    packed = packed_rows(attention, packing)
    if packed is None:
        values = value_model(ids, attention, positions)
    else:
        values = packed.unpack(value_model(packed.pack(ids), None, packed.positions))
    return values[:, width - 1:-1]


def packed_rows(attention: torch.Tensor, packing: Packing) -> PackedRows | None:
    """The rows of prompt + answer as one packed row where `packing` packs them (None: padded)."""
    return PackedRows(attention) if packing.packs_padded(attention) else None


@torch.no_grad()
def scores(models: PPOModels, answers: Answers, batch_size: int) -> torch.Tensor:
    """The reward model's score of each answer: the conversation with the answer as the assistant's
    turn, encoded as the reward job encodes it for training, scored as its forward scores it (at the
    last token that is not padding)."""
    sequences = [_scored_ids(models, answers, i) for i in range(len(answers))]
    device = answers.query.device
    pad = models.reward.config.pad_token_id
    out = []
    for start in range(0, len(sequences), batch_size):
        part = sequences[start:start + batch_size]
        width = max(len(s) for s in part)
        ids = torch.tensor([s + [pad] * (width - len(s)) for s in part], device=device)
        attention = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in part], device=device)
        out.append(models.reward(input_ids=ids, attention_mask=attention, use_cache=False).logits[:, 0].float())
    return torch.cat(out)


def _scored_ids(models: PPOModels, answers: Answers, i: int) -> list[int]:
    if models.score_template is None:  # text continued as is: the prompt and the tokens the policy wrote
        prompt = answers.query[i][answers.query_mask[i].bool()]
        return torch.cat([prompt, answers.response[i][answers.mask[i].bool()]]).tolist()
    prompt = answers.prompts[i]
    messages = [*prompt.messages, {"role": "assistant", "content": answers.texts[i]}]
    return conversation_ids(messages, models.reward_tokenizer, models.score_template, prompt.where)


@torch.no_grad()
def rollout(models: PPOModels, prompts: list[Prompt], encoded: list[list[int]], seeds: list[int],
            sampling: Sampling, missing_eos_penalty: float | None) -> Rollout:
    """Answers to `prompts` with everything PPO's update needs."""
    answers = answer(models, prompts, encoded, seeds, sampling)
    logprobs, ref_logprobs, values, entropies = [], [], [], []
    for start in range(0, len(answers), sampling.batch_size):
        rows = slice(start, start + sampling.batch_size)
        lp, entropy = token_logprobs(models.policy, answers, rows, sampling.temperature, with_entropy=True,
                                     packing=models.policy_packing)
        with models.reference_mode():
            ref, _ = token_logprobs(models.reference_model(), answers, rows, sampling.temperature,
                                    packing=models.policy_packing)
        logprobs.append(lp)
        ref_logprobs.append(ref)
        entropies.append(entropy)
        values.append(token_values(models.value, answers, rows, models.value_packing))
    score = scores(models, answers, sampling.batch_size)
    if missing_eos_penalty:
        score = score - missing_eos_penalty * (~torch.tensor(answers.stopped, device=score.device)).float()
    entropy = masked_mean(torch.cat(entropies), answers.mask).item()
    return Rollout(**vars(answers), logprobs=torch.cat(logprobs), ref_logprobs=torch.cat(ref_logprobs),
                   values=torch.cat(values), scores=score, entropy=entropy)
