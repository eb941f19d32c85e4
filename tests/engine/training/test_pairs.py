"""A reward model's packed preference pairs train exactly as padded ones: reading a packed row (scores gathered at
each record's last token that is not padding), every pair's chosen and rejected scores, and every gradient of the
pairwise loss, equal those of TRL's padded batch through the model's own pooling, for llama and GPT-2, also where a
conversation ends with the padding token."""

from __future__ import annotations

import pytest

from tests.tiny_models import tiny_byte_bpe, tiny_gpt2, tiny_llama

torch = pytest.importorskip("torch")

REL = 1e-4
TEXTS = ["Tell me about the sea. The sea is wide and blue.", "A short one.", "Say hi. hi",
         "Sort these words: pear apple fig banana cherry date grape. apple banana cherry date fig grape pear",
         "Name a colour. A colour that many like is a deep and quiet blue."]


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_byte_bpe(TEXTS * 4, vocab_size=300, max_length=256)


def score_model(tokenizer, builder):
    from transformers import AutoModelForSequenceClassification

    config = builder(tokenizer).config
    config.num_labels = 1
    config.pad_token_id = tokenizer.pad_token_id
    torch.manual_seed(1)
    # eval mode: GPT-2's dropout would draw other masks for the two layouts (gradients flow all the same)
    return AutoModelForSequenceClassification.from_config(config, dtype=torch.float32).eval()


def pairs(tokenizer) -> list[dict]:
    ids = [tokenizer(t)["input_ids"] for t in TEXTS]
    rows = [{"chosen_ids": ids[i], "rejected_ids": ids[(i + 2) % len(ids)]} for i in range(len(ids))]
    rows[1]["chosen_ids"] = rows[1]["chosen_ids"] + [tokenizer.pad_token_id]  # a conversation ending with pad
    return rows


def padded_scores(model, rows: list[dict], pad: int) -> torch.Tensor:
    from trl.trainer.reward_trainer import DataCollatorForPreference

    batch = DataCollatorForPreference(pad_token_id=pad)(rows)
    return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], use_cache=False).logits


def packed_scores(model, rows: list[dict], pad: int) -> torch.Tensor:
    from engine.training.pairs import PackedPairCollator, RecordScores

    batch = PackedPairCollator(pad)(rows)
    assert batch["input_ids"].shape[0] == 1 and batch["input_ids"].numel() == sum(
        len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in rows)  # no padding at all
    positions = batch.pop("score_positions")
    return RecordScores(model, model.score, positions)(**batch).logits


def scores_and_gradients(model, score) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad()
    scores = score()
    chosen, rejected = torch.chunk(scores.squeeze(-1), 2)
    (-torch.nn.functional.logsigmoid(chosen - rejected).mean()).backward()
    return scores.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("architecture", ["llama", "gpt2"])
def test_packed_pairs_give_the_padded_scores_and_gradients(tokenizer, architecture):
    from engine.training.batches import packing_problem

    model = score_model(tokenizer, {"llama": tiny_llama, "gpt2": tiny_gpt2}[architecture])
    assert packing_problem(model.config, "full") is None
    rows, pad = pairs(tokenizer), tokenizer.pad_token_id
    padded, padded_grads = scores_and_gradients(model, lambda: padded_scores(model, rows, pad))
    packed, packed_grads = scores_and_gradients(model, lambda: packed_scores(model, rows, pad))

    assert packed.shape == padded.shape == (2 * len(rows), 1)
    assert torch.allclose(packed, padded, rtol=REL, atol=REL * padded.abs().max().item())
    assert padded_grads.keys() == packed_grads.keys() and "score.weight" in padded_grads
    for name, grad in padded_grads.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert ((packed_grads[name] - grad).abs().max() / scale).item() <= REL, name


def test_scores_are_read_at_each_records_last_token_that_is_not_padding():
    from engine.training.pairs import score_positions

    assert score_positions([[5, 6, 7], [8, 0], [9]], pad_token_id=0) == [2, 3, 5]
    assert score_positions([[5, 6], [7]], pad_token_id=None) == [1, 2]
