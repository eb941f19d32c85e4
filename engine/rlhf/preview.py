"""`studio-engine preview` of a reward, DPO or KTO spec: each source of preferences with its format
(detected per file), the pairs that train and are held out and the records left out, and the first pairs laid out
as the job lays them out for the model's tokenizer (the chat template the job picks, the same token
ids): the prompt, then each answer marked — what DPO trains on, what a reward model scores beyond
the prompt the two share — with the lengths against data.max_length, past which the job drops a
pair. A KTO spec shows its judged answers the same way: the prompt, then the answer KTO trains on,
marked, with its verdict. Last, how the run will batch them (packed or padded, and why). Loads the tokenizer and
the model's configuration, no weights."""

from __future__ import annotations

from pathlib import Path

from engine.finetune.preview import CLOSE, OPEN, marked_text, use_color
from engine.models import choice_tokenizer, resolve_choice
from engine.rlhf.preferences import Pair, load_judged, load_pairs

PAIRS_SHOWN = 1
MEASURED = 2000  # pairs whose length is measured


def preview(spec, workspace, sample: int | None = None) -> dict:
    workspace = Path(workspace) if workspace is not None else None
    result = _judged_preview(spec, workspace, sample) if spec.kind == "kto" else _pairs_preview(spec, workspace, sample)
    return {**result, "batches": batching(spec, workspace)}


def batching(spec, workspace: Path | None) -> dict:
    """How the run will batch its records, as it will decide it: {"packed", "text", "why_padded"}."""
    from engine.finetune.model import model_config
    from engine.training.batches import packing_for

    if getattr(spec, "reference_free", False):
        return {"packed": False, "text": "padded",
                "why_padded": f"loss_type {spec.loss_type} reads every position's logits of padded rows."}
    choice = resolve_choice(spec.model, workspace, "model")
    packing, problem = packing_for(spec.train, model_config(choice.base, choice.trust_remote_code), spec.method.name)
    return {"packed": packing.packed, "text": packing.describe(),
            "why_padded": problem if spec.train.packing != "off" else "train.packing is off."}


def _pairs_preview(spec, workspace: Path | None, sample: int | None) -> dict:
    pairs = load_pairs(spec.data.sources, workspace, spec.data.eval_fraction, spec.seed)
    everything = pairs.train + pairs.held_out
    choice = resolve_choice(spec.model, workspace, "model")
    tokenizer = choice_tokenizer(choice)
    notes: list[str] = []
    layout = _reward_layout if spec.kind == "reward" else _dpo_layout
    template, sequences = layout(spec, tokenizer, everything, choice.label, notes)
    measured = [sequences(pair) for pair in everything[:MEASURED]]
    limit = spec.data.max_length
    shown = []
    for pair, (prompt, chosen, rejected) in list(zip(everything, measured))[:sample or PAIRS_SHOWN]:
        answers = {}
        for name, ids in (("chosen", chosen), ("rejected", rejected)):
            answers[name] = {"text": tokenizer.decode(ids, skip_special_tokens=False), "tokens": len(prompt) + len(ids)}
        shown.append({"where": pair.where, "messages": {"prompt": pair.prompt, "chosen": pair.chosen,
                                                        "rejected": pair.rejected},
                      "prompt": {"text": tokenizer.decode(prompt, skip_special_tokens=False), "tokens": len(prompt)},
                      **answers,
                      "too_long": max(answers["chosen"]["tokens"], answers["rejected"]["tokens"]) > limit})
    return {"kind": spec.kind, "formats": pairs.formats, "pairs": {"train": len(pairs.train),
                                                                   "held_out": len(pairs.held_out)},
            "left_out": pairs.notes, "model": choice.label, "chat_template": template is not None,
            "template_notes": notes, "max_length": limit, "measured": len(measured),
            "too_long": sum(1 for p, c, r in measured if len(p) + max(len(c), len(r)) > limit), "examples": shown}


def _judged_preview(spec, workspace: Path | None, sample: int | None) -> dict:
    from engine.rlhf.dpo_pairs import several_turns, tokenize_judged
    from engine.rlhf.policy_model import prompt_template

    answers = load_judged(spec.data.sources, workspace, spec.data.eval_fraction, spec.seed)
    everything = answers.train + answers.held_out
    choice = resolve_choice(spec.model, workspace, "model")
    tokenizer = choice_tokenizer(choice)
    notes: list[str] = []
    template = prompt_template(tokenizer, spec.data.chat_template, several_turns(everything), "data.chat_template",
                               choice.label, lambda level, message: notes.append(message))
    measured = tokenize_judged(everything[:MEASURED], tokenizer, template, spec.data.max_length)
    shown = []
    for judged in everything[:sample or PAIRS_SHOWN]:
        rows = tokenize_judged([judged], tokenizer, template, 1 << 30).rows
        prompt, completion = (rows[0]["prompt_ids"], rows[0]["completion_ids"]) if rows else ([], [])
        shown.append({"where": judged.where, "verdict": "good" if judged.good else "bad",
                      "messages": {"prompt": judged.prompt, "completion": judged.completion},
                      "prompt": {"text": tokenizer.decode(prompt, skip_special_tokens=False), "tokens": len(prompt)},
                      "completion": {"text": tokenizer.decode(completion, skip_special_tokens=False),
                                     "tokens": len(prompt) + len(completion)},
                      "too_long": len(prompt) + len(completion) > spec.data.max_length})
    return {"kind": spec.kind, "formats": answers.formats,
            "answers": {"train": len(answers.train), "held_out": len(answers.held_out),
                        "good": sum(a.good for a in everything)},
            "left_out": answers.notes, "model": choice.label, "chat_template": template is not None,
            "template_notes": notes, "max_length": spec.data.max_length, "measured": min(len(everything), MEASURED),
            "too_long": measured.too_long, "examples": shown}


def _sources(result: dict) -> str:
    return "; ".join(f"{source}: {format}" for source, format in result["formats"].items())


def _summary(result: dict, counts: str, unit: str) -> list[str]:
    """The opening lines of a preference preview: what was read (`counts`), what was left out, the layout
    and how many `unit` (pairs, answers) are too long, then the template's notes."""
    left_out = (f"; {len(result['left_out']):,} records left out, e.g. {result['left_out'][0]}"
                if result["left_out"] else "")
    layout = "its chat template" if result["chat_template"] else "no chat template (plain text)"
    return [counts + left_out + ".",
            f"Laid out for {result['model']} with {layout}; {result['too_long']:,} of {result['measured']:,} "
            f"measured {unit} are longer than data.max_length ({result['max_length']:,} tokens) and would be "
            "dropped.", *result["template_notes"]]


def _judged_text(result: dict, color: bool) -> str:
    answers = result["answers"]
    total = answers["train"] + answers["held_out"]
    lines = _summary(result, f"Judged answers ({_sources(result)}): {answers['train']:,} training and "
                             f"{answers['held_out']:,} held-out, {answers['good']:,} of {total:,} good", "answers")
    marks = "in green" if color else f"between {OPEN} {CLOSE}"
    for example in result["examples"]:
        lines.append(f"{example['where']}, judged {example['verdict']}, as KTO trains on it (the answer {marks}, "
                     f"{example['completion']['tokens']:,} tokens):")
        lines.append(marked_text([{"text": example["prompt"]["text"], "trained": False},
                                  {"text": example["completion"]["text"], "trained": True}], color))
        if example["too_long"]:
            lines.append(f"This answer is longer than data.max_length ({result['max_length']:,} tokens): the job "
                         "drops it.")
    return "\n".join(lines)


def _reward_layout(spec, tokenizer, pairs: list[Pair], label: str, notes: list[str]):
    """The reward job's template, and a pair as (prompt ids, chosen's answer ids, rejected's answer
    ids): the whole conversations the reward model scores (`conversation_ids`), split where the
    answer's turn starts."""
    from engine.finetune.rendering import IGNORE, render
    from engine.rlhf.reward_data import reward_template

    template, added = reward_template(tokenizer, spec.data.chat_template, pairs)
    if added:
        notes.append(f"{added} chat-template tokens are added to {label}'s vocabulary for this layout.")

    def split(pair: Pair, answer: list[dict]) -> tuple[list[int], list[int]]:
        # The ids conversation_ids gives (they do not depend on loss_on); the labels of "responses"
        # say where the answer's turn starts, the prompt's own assistant turns (earlier turns of a
        # conversation) kept out of them so that the answer is the last one.
        prompt = [{**message, "train": False} for message in pair.prompt]
        whole = render({"messages": prompt + answer, "where": pair.where}, tokenizer, template, "responses",
                       1 << 30, "truncate")
        start = next((i for i, label in enumerate(whole.labels) if label != IGNORE), len(whole.labels))
        return whole.input_ids[:start], whole.input_ids[start:]

    def sequences(pair: Pair) -> tuple[list[int], list[int], list[int]]:
        (prompt, chosen), (_, rejected) = split(pair, pair.chosen), split(pair, pair.rejected)
        return prompt, chosen, rejected
    return template, sequences


def _dpo_layout(spec, tokenizer, pairs: list[Pair], label: str, notes: list[str]):
    """The DPO job's template, and a pair as the ids it trains on: (prompt, chosen, rejected)."""
    from engine.rlhf.dpo_pairs import several_turns, tokenize_pairs
    from engine.rlhf.policy_model import prompt_template

    template = prompt_template(tokenizer, spec.data.chat_template, several_turns(pairs), "data.chat_template", label,
                               lambda level, message: notes.append(message))

    def sequences(pair: Pair) -> tuple[list[int], list[int], list[int]]:
        tokenized = tokenize_pairs([pair], tokenizer, template, max_length=1 << 30)
        if not tokenized.rows:  # an empty answer: the job drops the pair
            return [], [], []
        row = tokenized.rows[0]
        return row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]
    return template, sequences


def preview_text(result: dict) -> str:
    color = use_color()
    text = _judged_text(result, color) if result["kind"] == "kto" else _pairs_text(result, color)
    batches = result["batches"]
    why = f" ({batches['why_padded']})" if not batches["packed"] and batches.get("why_padded") else ""
    return f"{text}\nBatches: {batches['text']}{why}"


def _pairs_text(result: dict, color: bool) -> str:
    reads = "as the reward model reads it" if result["kind"] == "reward" else "as DPO trains on it"
    lines = _summary(result, f"Pairs ({_sources(result)}): {result['pairs']['train']:,} training and "
                             f"{result['pairs']['held_out']:,} held-out", "pairs")
    what = "trained" if result["kind"] == "dpo" else "scored with the prompt"
    marks = "in green" if color else f"between {OPEN} {CLOSE}"
    for example in result["examples"]:
        lines.append(f"{example['where']}, {reads} (the answers {what}, {marks}):")
        for name in ("chosen", "rejected"):
            answer = example[name]
            text = marked_text([{"text": example["prompt"]["text"], "trained": False},
                                {"text": answer["text"], "trained": True}], color)
            lines.append(f"— {name}, {answer['tokens']:,} tokens:\n{text}")
        if example["too_long"]:
            lines.append(f"This pair is longer than data.max_length ({result['max_length']:,} tokens): the job drops it.")
    return "\n".join(lines)
