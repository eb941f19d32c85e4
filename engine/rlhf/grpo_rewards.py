"""The reward of a GRPO run: the built-in task's checker (engine/rlhf/checker_reward.py) or a reward model.

A reward model scores the policy's prompt and answer as one conversation, encoded the one way the
reward job encodes what it trains on (engine.rlhf.reward_data.conversation_ids: fine-tuning's
rendering, with the template saved with the reward model). TRL's built-in scoring re-tokenizes the
decoded prompt and answer text instead, without the bos token and the answer's end-of-turn marker,
so the reward model would score text laid out unlike anything it was trained on. The reward model
must read the policy's tokens, which is why its tokenizer has to be the policy's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from engine.errors import ModelError, first_line
from engine.generate.prompts import Prompt
from engine.models import load_tokenizer
from engine.rlhf.checker_reward import answer_text
from engine.rlhf.reward_data import conversation_ids
from engine.specs.chat import CHAT_PRESETS

PROMPT_INDEX = "prompt_index"  # the dataset column holding each row's place in the job's prompt list
FIELD = "reward.reward_model"
BATCH = 32


def load_reward_model(folder: str, policy_tokenizer, policy: str, policy_template: str | None, device: str,
                      dtype: torch.dtype, trust_remote_code: bool) -> tuple[object, object, str]:
    """The reward model in eval mode, after checking that it reads the policy's tokens and gives one
    score; its tokenizer; and the chat template it scores conversations in (the one saved with it,
    which the reward job trained with; else the policy's; else the plain layout, as the reward job's
    default)."""
    from transformers import AutoModelForSequenceClassification

    tokenizer = load_tokenizer(folder, FIELD, trust_remote_code, f"the reward model {folder}")
    difference = tokenizer_difference(tokenizer, policy_tokenizer)
    if difference:
        raise ModelError(f"The reward model {folder} ({FIELD}) reads other tokens than the policy {policy}: "
                         f"{difference}.",
                         "Train the reward model from the policy (or the SFT model the policy came from) so both "
                         "share one tokenizer, or use reward.source: checker with builtin:tasks prompts.")
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=dtype,
                                                                   trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the reward model {folder} ({FIELD}): {first_line(e)}",
                         "The folder needs a sequence-classification model (config.json and weights), as a "
                         "reward run writes.") from None
    if model.config.num_labels != 1:
        raise ModelError(f"{folder} ({FIELD}) gives {model.config.num_labels} scores per text; a reward model gives "
                         f"one.", "Use a reward run's model (a one-score head).")
    if model.config.pad_token_id is None:
        model.config.pad_token_id = policy_tokenizer.pad_token_id  # finds each row's last token in a padded batch
    model.requires_grad_(False)
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # named templates: the default one is for chat
        own = own.get("default")
    return model.to(device).eval(), tokenizer, own or policy_template or CHAT_PRESETS["plain"][0]


def tokenizer_difference(a, b) -> str | None:
    """How two tokenizers differ (a sentence fragment), or None when they map every token alike."""
    vocab_a, vocab_b = a.get_vocab(), b.get_vocab()
    if vocab_a == vocab_b:
        return None
    if len(vocab_a) != len(vocab_b):
        return f"its vocabulary has {len(vocab_a):,} tokens, the policy's {len(vocab_b):,}"
    token = next(t for t in sorted(vocab_a) if vocab_b.get(t) != vocab_a[t])
    where = f"id {vocab_b[token]}" if token in vocab_b else "no id"
    return f"the token {token!r} has id {vocab_a[token]} in it and {where} in the policy's"


class RewardModelScorer:
    """A reward function in TRL's form: scores each (prompt, answer) with the reward model."""

    __name__ = "reward_model"  # TRL names the reward's metrics after the function

    def __init__(self, model, tokenizer, template: str, prompts: list[Prompt], max_length: int):
        self.model, self.tokenizer, self.template = model, tokenizer, template
        self.prompts, self.max_length = prompts, max_length

    @torch.no_grad()
    def __call__(self, prompts, completions, prompt_index, **_) -> list[float]:
        rows = [self.input_ids(self.prompts[i], answer_text(c)) for i, c in zip(prompt_index, completions)]
        scores: list[float] = []
        device = next(self.model.parameters()).device
        pad = self.model.config.pad_token_id
        for start in range(0, len(rows), BATCH):
            batch = rows[start:start + BATCH]
            width = max(len(ids) for ids in batch)
            ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
            mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=device)
            scores += self.model(input_ids=ids, attention_mask=mask).logits[:, 0].float().tolist()
        return scores

    def input_ids(self, prompt: Prompt, answer: str) -> list[int]:
        """The prompt and answer as one conversation, as the reward job encodes what it trains on."""
        messages = [*prompt.messages, {"role": "assistant", "content": answer.strip()}]
        ids = conversation_ids(messages, self.tokenizer, self.template, prompt.where)
        return ids[-self.max_length:]  # a long prompt loses its start, never the answer


class RewardRecorder:
    """Wraps a reward function and keeps its last batch (prompt index, answer, reward) for sample events."""

    def __init__(self, function: Callable[..., list[float]]):
        self.function = function
        self.__name__ = getattr(function, "__name__", "reward")
        self.last: list[tuple[int, str, float]] = []

    def __call__(self, prompts, completions, **kwargs) -> list[float]:
        rewards = self.function(prompts=prompts, completions=completions, **kwargs)
        self.last = [(i, answer_text(c), r) for i, c, r in zip(kwargs[PROMPT_INDEX], completions, rewards)]
        return rewards

