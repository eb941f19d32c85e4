"""Preferences as token ids for DPO and KTO: the prompt, and the chosen and rejected answers after it
(or the one judged answer after it).

The ids are those fine-tuning trains on and the generate job prompts with (engine.finetune.rendering):
the bos token first where the tokenizer starts every text with one, the answer's turn up to its
end-of-turn marker, and eos after an answer when the template has no marker (the `plain` preset),
so the policy keeps stopping where it learned to. TRL's own tokenization of conversations renders
the template without the bos token and without that eos, which would train the policy on
sequences it never sees when it answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.finetune.rendering import IGNORE, render, text_ids
from engine.generate.prompts import Prompt
from engine.rlhf.policy_model import prompt_text
from engine.rlhf.preferences import Judged, Pair

TEXT_SEPARATOR = "\n"  # between a plain-text prompt and its answer (models without a chat template)


@dataclass
class TokenizedPairs:
    rows: list[dict]  # {"prompt_ids", "chosen_ids", "rejected_ids"}
    too_long: int = 0  # pairs longer than max_length, dropped
    longest: int = 0  # tokens of the longest pair (prompt + the longer answer)
    empty: int = 0  # pairs with an empty answer, dropped


def several_turns(preferences: list[Pair] | list[Judged]) -> str | None:
    """Where the first pair (or judged answer) with more than one turn before or in its answers is
    ("queue x, item 3"), or None when every one is one prompt and one answer each (plain text can
    lay those out)."""
    for preference in preferences:
        spoken = [m for m in preference.prompt if m.get("role") != "system"]
        answers = (preference.completion,) if isinstance(preference, Judged) else (preference.chosen,
                                                                                    preference.rejected)
        if len(spoken) > 1 or any(len(a) > 1 for a in answers):
            return preference.where
    return None


def pair_prompt(pair: Pair | Judged) -> Prompt:
    users = [m.get("content") or "" for m in pair.prompt if m.get("role") == "user"]
    return Prompt(id=pair.where, text=users[-1] if users else "", messages=list(pair.prompt), where=pair.where)


def question_of(pair: Pair | Judged) -> str:
    """The question a built-in task would see in this pair's prompt: the last paragraph of the last
    user message (as engine.tasks.generators.check reads it)."""
    return pair_prompt(pair).text.split("\n\n")[-1]


def tokenize_pairs(pairs: list[Pair], tokenizer, template: str | None, max_length: int) -> TokenizedPairs:
    result = TokenizedPairs(rows=[])
    for pair in pairs:
        prompt_ids = text_ids(prompt_text(pair_prompt(pair), tokenizer, template), tokenizer)
        chosen, chosen_end = whole_ids(pair, pair.chosen, prompt_ids, tokenizer, template)
        rejected, rejected_end = whole_ids(pair, pair.rejected, prompt_ids, tokenizer, template)
        # The answers start where both sequences leave the prompt (a template may render a prompt alone a
        # little differently from the same prompt followed by an answer; TRL splits at the same place).
        start = min(_common_prefix(prompt_ids, chosen), _common_prefix(prompt_ids, rejected))
        length = max(chosen_end, rejected_end)
        result.longest = max(result.longest, length)
        if chosen_end <= start or rejected_end <= start:
            result.empty += 1
        elif length > max_length:
            result.too_long += 1
        else:
            result.rows.append({"prompt_ids": prompt_ids[:start], "chosen_ids": chosen[start:chosen_end],
                                "rejected_ids": rejected[start:rejected_end]})
    return result


def tokenize_judged(answers: list[Judged], tokenizer, template: str | None, max_length: int) -> TokenizedPairs:
    """Rows {"prompt_ids", "completion_ids", "label"} of judged answers, laid out as pairs are."""
    result = TokenizedPairs(rows=[])
    for judged in answers:
        prompt_ids = text_ids(prompt_text(pair_prompt(judged), tokenizer, template), tokenizer)
        whole, end = whole_ids(judged, judged.completion, prompt_ids, tokenizer, template)
        start = _common_prefix(prompt_ids, whole)
        result.longest = max(result.longest, end)
        if end <= start:
            result.empty += 1
        elif end > max_length:
            result.too_long += 1
        else:
            result.rows.append({"prompt_ids": prompt_ids[:start], "completion_ids": whole[start:end],
                                "label": judged.good})
    return result


def whole_ids(pair: Pair | Judged, answer: list[dict], prompt_ids: list[int], tokenizer,
              template: str | None) -> tuple[list[int], int]:
    """The ids of the prompt followed by `answer`, and the position after the answer's last trained
    token (its end-of-turn marker, or eos); that position is at most len(prompt_ids) for an empty answer."""
    if template is None:
        content = "".join(m.get("content") or "" for m in answer).strip()
        if not content:
            return prompt_ids, len(prompt_ids)
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        ids = prompt_ids + tokenizer(TEXT_SEPARATOR + content, add_special_tokens=False)["input_ids"] + eos
        return ids, len(ids)
    record = {"messages": [*pair.prompt, *answer], "where": pair.where}
    whole = render(record, tokenizer, template, "responses", max_length=1 << 30, overflow="truncate")
    trained = [i for i, label in enumerate(whole.labels) if label != IGNORE]
    return whole.input_ids, trained[-1] + 1 if trained else 0


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
