"""Preference pairs as token ids for a reward model: the chat template they are laid out with, and
the ids of prompt + chosen and prompt + rejected, with the pairs longer than the limit dropped.

A conversation is encoded exactly as the finetune job encodes it (engine/finetune/rendering.py:
the same template, the bos token put first where the tokenizer wants one, eos after answers of a
template without an end-of-turn marker), so a reward model started from an SFT model reads text
laid out as that model learned it. `conversation_ids` is the one way to encode a conversation to
be scored: anything that scores answers later (PPO) must use it too.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from engine.errors import TokenizerError
from engine.finetune.rendering import add_marker_tokens, chat_template, render
from engine.rlhf.preferences import Pair


@dataclass
class PairRows:
    rows: list[dict]  # {"chosen_ids", "rejected_ids"}, what TRL's reward trainer takes
    dropped: int  # pairs whose chosen or rejected conversation is longer than max_length
    longest: int  # tokens of the longest conversation seen, dropped ones included


def reward_template(tokenizer, choice: str, pairs: list[Pair]) -> tuple[str, int]:
    """The Jinja template the pairs are laid out with, and how many marker tokens were added to the
    tokenizer for it (the model's embeddings must then grow to `len(tokenizer)`).

    "auto" takes the model's own template; a model without one gets the plain layout
    ("User: …\\nAssistant: …") for one-turn pairs, and an error for pairs with several turns, whose
    layout the model cannot have learned.
    """
    if choice == "auto":
        own = getattr(tokenizer, "chat_template", None)
        if isinstance(own, dict):
            own = own.get("default")
        if own:
            choice = "model"
        else:
            several = [p for p in pairs if _turns(p) > 2]
            if several:
                raise TokenizerError(
                    f"The model has no chat template, and {len(several):,} preference pairs have several turns "
                    f"(e.g. {several[0].where}): without a template the model cannot tell whose turn is whose.",
                    "Start from a model that has a chat template (an SFT run trained with chatml has one), or set "
                    "data.chat_template: chatml or plain to lay the conversations out that way.")
            choice = "plain"
    template = chat_template(tokenizer, choice)
    added = add_marker_tokens(tokenizer, choice)
    tokenizer.chat_template = template  # saved with the reward model: what scores answers later uses it
    return template, added


def conversation_ids(messages: list[dict], tokenizer, template: str, where: str = "a conversation") -> list[int]:
    """The token ids a reward model scores for a conversation ending with the answer."""
    record = {"messages": messages, "where": where}
    return render(record, tokenizer, template, "all", sys.maxsize, "truncate").input_ids


def tokenize_pairs(pairs: list[Pair], tokenizer, template: str, max_length: int) -> PairRows:
    """Token ids of every pair's two conversations; a pair where either is longer than `max_length`
    is dropped and counted (cutting it would cut off the answers being compared)."""
    rows, dropped, longest = [], 0, 0
    for pair in pairs:
        chosen = conversation_ids(pair.prompt + pair.chosen, tokenizer, template, pair.where)
        rejected = conversation_ids(pair.prompt + pair.rejected, tokenizer, template, pair.where)
        longest = max(longest, len(chosen), len(rejected))
        if max(len(chosen), len(rejected)) > max_length:
            dropped += 1
            continue
        rows.append({"chosen_ids": chosen, "rejected_ids": rejected})
    return PairRows(rows, dropped, longest)


def _turns(pair: Pair) -> int:
    return sum(1 for m in pair.prompt + pair.chosen if m.get("role") != "system")
