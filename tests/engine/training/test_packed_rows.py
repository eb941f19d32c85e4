"""A policy's padded rows run packed (engine/training/packed_rows.py) give each record what it gets alone.

- DPO's and KTO's layout (TRL's preference collators: each record on the left of its row, padding on the right):
  each answer's summed log-probability (only the answer's tokens: the prompt is masked as TRL masks it) and every
  gradient of the DPO loss equal those of TRL's padded batch, for llama, GPT-2 and llama on chatml-rendered
  conversations.
- GRPO's layout (prompts padded on the left, answers on the right): every answer token's log-probability and every
  gradient of a policy-gradient loss equal those of each record run alone, for llama, GPT-2 and llama on
  chatml-rendered prompts — where TRL's padded
  forward numbers a left-padded prompt's columns, not its tokens, and so gives GPT-2's learned positions other
  inputs than the record alone.
- Calls that are not a log-probability forward (generation) run as they are."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_byte_bpe, tiny_gpt2, tiny_llama

torch = pytest.importorskip("torch")

REL = 1e-4
TEXTS = ["Tell me about the sea. The sea is wide and blue.", "A short one.", "Say hi. hi",
         "Sort these words: pear apple fig banana cherry date grape. apple banana cherry date fig grape pear",
         "Name a colour. A colour that many like is a deep and quiet blue."]
ARCHITECTURES = {"llama": tiny_llama, "gpt2": tiny_gpt2}


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_byte_bpe(TEXTS * 4, vocab_size=300, max_length=256)


def policy(tokenizer, architecture: str):
    from trl.trainer.utils import add_fused_lm_head

    model = ARCHITECTURES[architecture](tokenizer).to(torch.float32).eval()
    add_fused_lm_head(model)  # as TRL's trainers do: log-probabilities without the full logits
    return model


def gradients(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def assert_same_gradients(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys() and len(expected) > 5
    for name, grad in expected.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert ((got[name] - grad).abs().max() / scale).item() <= REL, name


def packed_forwards(model, run):
    """`run()` with the model's forwards packed; what it returns, and the widths of the rows the model read."""
    from engine.training.packed_rows import PackedLogProbs

    widths = []
    embeddings = model.get_input_embeddings().register_forward_pre_hook(lambda m, args: widths.append(args[0].shape))
    packing = PackedLogProbs(model)
    try:
        return run(), widths
    finally:
        packing.remove()
        embeddings.remove()


def dpo_rows(tokenizer, chat: bool) -> list[dict]:
    """Pairs as the DPO job tokenizes them: prompt, chosen and rejected ids of different lengths."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    rows = []
    for i, text in enumerate(TEXTS):
        question, _, answer = text.partition(". ")
        other = TEXTS[(i + 2) % len(TEXTS)].partition(". ")[2] or "no"
        if chat:
            prompt = tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                                   add_generation_prompt=True)
            answer, other = answer + "<|im_end|>", other + "<|im_end|>"
        else:
            prompt = question + ". "
        rows.append({"prompt_ids": ids(prompt), "chosen_ids": ids(answer or "yes"), "rejected_ids": ids(other)})
    return rows


def dpo_logps_and_gradients(model, rows: list[dict], pad: int):
    """As TRL's DPOTrainer computes them: its collator's padded batch, the answers' summed log-probabilities,
    the sigmoid loss against a fixed reference."""
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    batch = DataCollatorForPreference(pad_token_id=pad)(rows)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    model.zero_grad()
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=labels,
                fused_lm_head=True, use_cache=False)
    assert out.log_probs.shape == (2 * len(rows), batch["input_ids"].shape[1] - 1)
    chosen, rejected = out.log_probs.sum(dim=1).chunk(2)
    (-torch.nn.functional.logsigmoid(0.1 * (chosen - rejected - 0.3)).mean()).backward()
    return torch.cat([chosen, rejected]).detach(), gradients(model)


@pytest.mark.parametrize("architecture,chat", [("llama", False), ("gpt2", False), ("llama", True)],
                         ids=["llama", "gpt2", "llama-chatml"])
def test_packed_dpo_pairs_give_the_padded_log_probabilities_and_gradients(tokenizer, architecture, chat):
    model, rows, pad = policy(tokenizer, architecture), dpo_rows(tokenizer, chat), tokenizer.pad_token_id
    assert len({len(r["prompt_ids"]) + len(r["chosen_ids"]) for r in rows}) > 2  # rows of several lengths
    padded, padded_grads = dpo_logps_and_gradients(model, rows, pad)
    (packed, packed_grads), widths = packed_forwards(model, lambda: dpo_logps_and_gradients(model, rows, pad))

    real = sum(len(r["prompt_ids"]) + len(r[k]) for r in rows for k in ("chosen_ids", "rejected_ids"))
    assert widths == [torch.Size([1, real])]  # one row, no padding
    assert torch.allclose(packed, padded, rtol=REL, atol=REL * padded.abs().max().item())
    assert_same_gradients(padded_grads, packed_grads)


def prompts_and_answers(tokenizer, chat: bool) -> list[tuple[list[int], list[int]]]:
    """Prompts as GRPO lays them out (plain text, or chatml with the assistant's turn opened) and answers."""
    def ids(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt(question: str) -> str:
        if not chat:
            return question + ". "
        return tokenizer.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                             add_generation_prompt=True)

    return [(ids(prompt(question)), ids((answer or "yes") + ("<|im_end|>" if chat else "")))
            for question, _, answer in (t.partition(". ") for t in TEXTS)]


ADVANTAGES = [1.0, -0.5, 0.25, -1.0, 0.75]  # one per answer, as GRPO weighs its answers


def grpo_logps_and_gradients(model, records, pad: int):
    """As TRL's GRPOTrainer computes them: prompts left-padded and answers right-padded in one batch, every answer
    token's log-probability (`logits_to_keep` columns, the prompt masked), a loss weighing each answer's tokens."""
    prompt_width, answer_width = (max(len(r[i]) for r in records) for i in (0, 1))
    ids = torch.tensor([[pad] * (prompt_width - len(p)) + p + a + [pad] * (answer_width - len(a)) for p, a in records])
    mask = torch.tensor([[0] * (prompt_width - len(p)) + [1] * (len(p) + len(a)) + [0] * (answer_width - len(a))
                         for p, a in records])
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-answer_width] = -100
    model.zero_grad()
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    per_token = out.log_probs[:, -answer_width:]
    answer_mask = mask[:, -answer_width:]
    (-(per_token * answer_mask * torch.tensor(ADVANTAGES)[:, None]).sum()).backward()
    return [row[:len(a)].detach() for row, (_, a) in zip(per_token, records)], gradients(model)


def alone_logps_and_gradients(model, records):
    """Each record run alone, without padding: the same log-probabilities and loss."""
    model.zero_grad()
    logps = []
    for (prompt, answer), advantage in zip(records, ADVANTAGES):
        ids = torch.tensor([prompt + answer])
        labels = ids.clone()
        labels[:, :len(prompt)] = -100
        out = model(input_ids=ids, labels=labels, fused_lm_head=True, use_cache=False)
        per_token = out.log_probs[0, len(prompt) - 1:]
        (-(per_token * advantage).sum()).backward()
        logps.append(per_token.detach())
    return logps, gradients(model)


@pytest.mark.parametrize("architecture,chat", [("llama", False), ("gpt2", False), ("llama", True)],
                         ids=["llama", "gpt2", "llama-chatml"])
def test_left_and_right_padded_rows_packed_give_each_records_own_log_probabilities_and_gradients(tokenizer,
                                                                                                architecture, chat):
    model, pad = policy(tokenizer, architecture), tokenizer.pad_token_id
    records = prompts_and_answers(tokenizer, chat)
    assert len({len(p) for p, _ in records}) > 2 and len({len(a) for _, a in records}) > 2
    alone, alone_grads = alone_logps_and_gradients(model, records)
    (packed, packed_grads), widths = packed_forwards(model, lambda: grpo_logps_and_gradients(model, records, pad))

    assert widths == [torch.Size([1, sum(len(p) + len(a) for p, a in records)])]
    for got, expected in zip(packed, alone):
        assert torch.allclose(got, expected, rtol=REL, atol=REL * expected.abs().max().item())
    assert_same_gradients(alone_grads, packed_grads)
    if architecture == "gpt2":  # padded, a left-padded prompt's learned positions are its columns: not the record's
        padded, _ = grpo_logps_and_gradients(model, records, pad)
        assert any(not torch.allclose(got, expected, rtol=REL, atol=REL) for got, expected in zip(padded, alone))


def test_packed_log_probs_leave_generation_and_other_calls_as_they_are(tokenizer):
    from engine.training.packed_rows import PackedLogProbs

    model = policy(tokenizer, "llama")
    prompt = torch.tensor([tokenizer("Say hi.")["input_ids"]])
    before = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    packing = PackedLogProbs(model)
    after = model.generate(prompt, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    packing.remove()
    assert torch.equal(before, after)
