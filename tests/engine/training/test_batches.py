"""Packed batches train exactly as padded ones: per-record losses and every gradient of the fast path
(records packed in one row, logits only at the trained positions) equal those of the plain padded
Hugging Face forward with its own loss, for llama, GPT-2 and a chat model's architecture (qwen2) with
its chat template, on responses-only masks; and architectures that do not keep packed records apart
are found and named."""

from __future__ import annotations

import os

import pytest

from tests.tiny_models import tiny_byte_bpe, tiny_gpt2, tiny_llama

torch = pytest.importorskip("torch")

REL = 1e-4
CONVERSATIONS = [("What is 12 plus 30?", "42"),
                 ("Reverse the words: red green blue yellow.", "yellow blue green red"),
                 ("Say hi.", "hi"),
                 ("Sort these words: pear apple fig banana cherry date grape.",
                  "apple banana cherry date fig grape pear"),
                 ("Name a colour.", "A colour that many like is a deep and quiet blue.")]


@pytest.fixture(scope="module")
def tokenizer():
    texts = [f"{q} {a}" for q, a in CONVERSATIONS] * 4
    return tiny_byte_bpe(texts, vocab_size=300, max_length=256)


def tiny_qwen2(tokenizer):
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=256, pad_token_id=tokenizer.pad_token_id))


MODELS = {"llama": (tiny_llama, "plain"), "gpt2": (tiny_gpt2, "plain"), "qwen2": (tiny_qwen2, "chatml")}


def rendered_rows(tokenizer, template_name: str) -> list[dict]:
    from engine.finetune.rendering import render_records
    from engine.specs.chat import CHAT_PRESETS

    records = [{"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
               for q, a in CONVERSATIONS]
    rows, _ = render_records(records, tokenizer, CHAT_PRESETS[template_name][0], "responses", 128, "truncate")
    assert len(rows) == len(CONVERSATIONS)
    assert all(-100 in r.labels and any(x != -100 for x in r.labels) for r in rows)  # responses only
    return [{"input_ids": r.input_ids, "labels": r.labels} for r in rows]


def per_record_losses_apart(model, rows: list[dict]) -> list[float]:
    losses = []
    with torch.no_grad():
        for row in rows:
            out = model(input_ids=torch.tensor([row["input_ids"]]), labels=torch.tensor([row["labels"]]))
            losses.append(out.loss.item())
    return losses


def per_record_losses_packed(model, rows: list[dict]) -> list[float]:
    from engine.training.batches import PackedCollator

    batch = PackedCollator()(rows)
    labels = batch.pop("labels")
    with torch.no_grad():
        logits = model(**batch).logits
    keep = batch["logits_to_keep"][0]
    targets = labels[0, 1:][keep[:-1]]
    token_losses = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    record = (batch["position_ids"][0] == 0).cumsum(0) - 1  # which record each position belongs to
    owners = record[keep]
    return [token_losses[owners == i].mean().item() for i in range(len(rows))]


def gradients(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("name", list(MODELS))
def test_packed_records_train_exactly_as_padded_ones(tokenizer, name):
    from engine.training.batches import PackedCollator, PaddedCollator, packed_mismatch, trained_positions_loss

    build, template = MODELS[name]
    model = build(tokenizer).eval()  # no dropout: both paths must see the same function
    rows = rendered_rows(tokenizer, template)
    assert packed_mismatch(model.config) < REL

    apart = per_record_losses_apart(model, rows)
    packed = per_record_losses_packed(model, rows)
    assert packed == pytest.approx(apart, rel=REL)
    assert len(set(round(x, 3) for x in apart)) > 1  # the records differ: a mix-up would show

    model.zero_grad()
    plain = PaddedCollator(tokenizer.pad_token_id, keep_trained_logits=False)(rows)
    model(**plain).loss.backward()  # transformers' own loss on the padded batch
    reference = gradients(model)

    model.zero_grad()
    batch = PackedCollator()(rows)
    labels = batch.pop("labels")
    trained_positions_loss(model(**batch), labels).backward()
    fast = gradients(model)

    assert fast.keys() == reference.keys() and len(fast) > 5
    for key, grad in reference.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert ((fast[key] - grad).abs().max() / scale).item() < REL, key


def test_padded_batches_with_trained_logits_only_match_the_plain_loss(tokenizer):
    from engine.training.batches import PaddedCollator, trained_positions_loss

    model = tiny_llama(tokenizer).eval()
    rows = rendered_rows(tokenizer, "plain")
    with torch.no_grad():
        plain = model(**PaddedCollator(tokenizer.pad_token_id, keep_trained_logits=False)(rows)).loss
        batch = PaddedCollator(tokenizer.pad_token_id)(rows)
        labels = batch.pop("labels")
        out = model(**batch)
    trained = int((labels[:, 1:] != -100).sum())
    assert out.logits.shape == (trained, len(tokenizer))  # no logits for prompts or padding
    assert trained_positions_loss(out, labels).item() == pytest.approx(plain.item(), rel=REL)
    assert trained_positions_loss(out, labels, num_items_in_batch=torch.tensor(2 * trained)).item() == \
        pytest.approx(plain.item() / 2, rel=REL)


def test_architectures_that_mix_packed_records_are_named():
    from transformers import OPTConfig

    from engine.training.batches import packing_problem

    config = OPTConfig(vocab_size=100, hidden_size=32, num_hidden_layers=1, ffn_dim=64, num_attention_heads=2,
                       word_embed_proj_dim=32)
    problem = packing_problem(config, "lora")
    assert problem is not None and "opt architecture does not keep packed records apart" in problem
    assert "virtual tokens" in packing_problem(config, "prefix")


def masked_to(batch: dict, labels: torch.Tensor, record: int) -> tuple[dict, torch.Tensor]:
    """The packed batch with only `record`'s labels trained (and its trained-positions mask to match)."""
    from engine.training.batches import IGNORE, trained_positions

    owner = (batch["position_ids"][0] == 0).cumsum(0) - 1
    only = labels.clone()
    only[0, owner != record] = IGNORE
    return {**batch, "logits_to_keep": trained_positions(only)}, only


@pytest.mark.parametrize("name", list(MODELS))
def test_chunked_cross_entropy_equals_the_plain_loss_and_gradients(tokenizer, name, monkeypatch):
    from engine.training import batches
    from engine.training.batches import (BatchPlan, ChunkedCrossEntropy, PackedCollator, PaddedCollator,
                                         chunked_problem, trainer_loss)

    build, template = MODELS[name]
    model = build(tokenizer).eval()
    rows = rendered_rows(tokenizer, template)
    assert chunked_problem(model.config) is None
    chunked = trainer_loss(BatchPlan(packed=True, loss="chunked", compiled=False), model)
    assert isinstance(chunked, ChunkedCrossEntropy)
    monkeypatch.setattr(batches, "CHUNK_LOGITS", 3 * len(tokenizer))  # chunks of 3 positions: many chunks

    apart = per_record_losses_apart(model, rows)
    batch = PackedCollator()(rows)
    labels = batch.pop("labels")
    per_record = []
    with torch.no_grad(), chunked.hidden_states_out():
        for i in range(len(rows)):
            only_batch, only = masked_to(batch, labels, i)
            per_record.append(chunked(model(**only_batch), only).item())
    assert per_record == pytest.approx(apart, rel=REL)

    model.zero_grad()
    model(**PaddedCollator(tokenizer.pad_token_id, keep_trained_logits=False)(rows)).loss.backward()
    reference = gradients(model)
    model.zero_grad()
    with chunked.hidden_states_out():
        hidden = model(**batch).logits
    assert hidden.shape[-1] == model.config.get_text_config().hidden_size  # no logits were made
    chunked(hidden[None], labels).backward()
    fast = gradients(model)
    assert fast.keys() == reference.keys() and len(fast) > 5
    for key, grad in reference.items():
        scale = grad.abs().max().clamp_min(1e-12)
        assert ((fast[key] - grad).abs().max() / scale).item() < REL, key


# One loss step of a 32k-vocabulary model on 2,048 trained tokens, in a fresh process: how far its peak RSS
# rises above the RSS before the step (the model and imports), in MB. The kernel's peak (VmHWM) is reset
# just before the step, so a transient peak while importing or building the model cannot hide the step's.
LOSS_STEP = """
import sys, torch
from transformers import AutoModelForCausalLM, LlamaConfig
from engine.training.batches import BatchPlan, PackedCollator, trainer_loss
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(LlamaConfig(vocab_size=32000, hidden_size=64, intermediate_size=128,
    num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=4096))
rows = [{"input_ids": torch.randint(0, 32000, (512,)).tolist()} for _ in range(4)]
batch = PackedCollator()([{**r, "labels": r["input_ids"]} for r in rows])
labels = batch.pop("labels")
loss = trainer_loss(BatchPlan(packed=True, loss=sys.argv[1], compiled=False), model)
def status_kb(field):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))
try:
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
except OSError as e:
    sys.exit(f"unmeasurable: the peak RSS cannot be reset here ({e})")
before = status_kb("VmRSS")
if sys.argv[1] == "chunked":
    with loss.hidden_states_out():
        outputs = model(**batch)
else:
    outputs = model(**batch)
loss(outputs, labels).backward()
print((status_kb("VmHWM") - before) / 1024)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="measures the peak RSS through Linux's /proc")
def test_chunked_cross_entropy_lowers_the_peak_memory_of_the_loss_step():
    import subprocess
    import sys

    def rise(loss: str) -> float:
        done = subprocess.run([sys.executable, "-c", LOSS_STEP, loss], capture_output=True, text=True)
        if "unmeasurable:" in done.stderr:
            pytest.skip(done.stderr.strip().splitlines()[-1])
        assert done.returncode == 0, done.stderr[-2000:]
        return float(done.stdout.strip().splitlines()[-1])

    whole, chunked = rise("trained positions"), rise("chunked")
    # 2,044 trained rows of 32,000 fp32 logits are 262 MB, held with their softmax through the backward.
    assert whole > 250
    assert chunked < whole / 2, (whole, chunked)


def test_architectures_whose_logits_are_not_the_output_layers_keep_the_plain_loss():
    from transformers import Gemma2Config

    from engine.training.batches import chunked_problem

    config = Gemma2Config(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                          num_attention_heads=2, num_key_value_heads=1, head_dim=16, final_logit_softcapping=30.0)
    assert "changes its output layer's logits" in chunked_problem(config)


def test_chunked_cross_entropy_trains_added_token_rows_as_the_plain_loss(tokenizer):
    """Where the chat template added tokens, PEFT trains their rows through a wrapper of the tied output
    layer; the chunked loss must reach those rows as the model's own output layer does."""
    import peft

    from engine.training.batches import BatchPlan, PackedCollator, PaddedCollator, trainer_loss

    model = peft.get_peft_model(tiny_gpt2(tokenizer), peft.LoraConfig(
        r=4, target_modules=["c_attn"], lora_dropout=0.0, trainable_token_indices=[len(tokenizer) - 2,
                                                                                   len(tokenizer) - 1])).eval()
    assert type(model.get_output_embeddings()).__name__ == "TrainableTokensWrapper"
    rows = rendered_rows(tokenizer, "plain")
    for row in rows:  # the added tokens in the answers, so their rows get gradients from the loss
        row["input_ids"][-2:] = row["labels"][-2:] = [len(tokenizer) - 2, len(tokenizer) - 1]
    model.zero_grad()
    model(**PaddedCollator(tokenizer.pad_token_id, keep_trained_logits=False)(rows)).loss.backward()
    reference = gradients(model)
    model.zero_grad()
    chunked = trainer_loss(BatchPlan(packed=True, loss="chunked", compiled=False), model)
    batch = PackedCollator()(rows)
    labels = batch.pop("labels")
    with chunked.hidden_states_out():
        chunked(model(**batch), labels).backward()
    fast = gradients(model)
    assert any("trainable_tokens_delta" in key for key in reference) and fast.keys() == reference.keys()
    for key, grad in reference.items():
        assert ((fast[key] - grad).abs().max() / grad.abs().max().clamp_min(1e-12)).item() < REL, key


UNIFORM, TAILED = [40] * 16, [10] * 15 + [200]  # 640 tokens of one length; 350 with one long record


def records(lengths: list[int]) -> list[dict]:
    return [{"input_ids": [5] * n, "labels": [5] * n} for n in lengths]


def test_auto_packs_a_batch_only_where_one_row_computes_less_than_padded_rows(tokenizer):
    """Attention through a dense mask sees a packed row whole: 16 records of one length cost 16 times the
    attention of their padded rows packed, while one long record among short ones makes the padding the cost."""
    from types import SimpleNamespace

    from engine.training.batches import choose_plan, collator, one_row_pays

    config = tiny_llama(tokenizer).config  # 32 wide: a token costs as much as 192 pairs of positions
    assert not one_row_pays(UNIFORM, 32) and one_row_pays(TAILED, 32)
    # One record twice as long as the others: a narrow model pads (attention dominates), a wide one packs (the
    # linear layers do, and they would compute the padding).
    assert not one_row_pays([40] * 15 + [80], 32) and one_row_pays([40] * 15 + [80], 4096)

    auto, _ = choose_plan(SimpleNamespace(packing="auto", compile=False), config, "cpu", "full")
    assert auto.packed and auto.batchwise and "batch by batch" in auto.describe()
    batchwise = collator(auto, tokenizer.pad_token_id, "cpu", config)
    assert batchwise(records(UNIFORM))["input_ids"].shape == (16, 40)
    assert batchwise(records(TAILED))["input_ids"].shape == (1, 350)

    on, _ = choose_plan(SimpleNamespace(packing="on", compile=False), config, "cpu", "full")
    assert on.packed and not on.batchwise and on.describe().startswith("packed, padding-free")
    assert collator(on, tokenizer.pad_token_id, "cpu", config)(records(UNIFORM))["input_ids"].shape == (1, 640)

    config._attn_implementation = "flash_attention_2"  # varlen attention stays within each record: always packed
    assert not choose_plan(SimpleNamespace(packing="auto", compile=False), config, "cuda", "full")[0].batchwise


def test_pairs_are_packed_batch_by_batch_as_records_are(tokenizer):
    from engine.training.batches import Packing, TokenCounts
    from engine.training.pairs import PackedPairCollator

    packing = Packing(True, batchwise=True, hidden_size=32)
    assert not packing.packs(UNIFORM) and packing.packs(TAILED) and Packing(True).packs(UNIFORM)
    pairs = lambda lengths: [{"chosen_ids": [5] * a, "rejected_ids": [6] * b}  # noqa: E731
                             for a, b in zip(lengths[::2], lengths[1::2])]
    collate = PackedPairCollator(tokenizer.pad_token_id, packing=packing)
    padded = collate(pairs(UNIFORM))
    assert padded["input_ids"].shape == (16, 40) and "score_positions" not in padded  # TRL's own padded batch
    packed = collate(pairs(TAILED))
    assert packed["input_ids"].shape == (1, 350) and len(packed["score_positions"]) == 16

    counts = TokenCounts(packing)  # DPO: the padded batch the model runs packed where `packing` packs it
    import torch
    for lengths in (UNIFORM, TAILED):
        width = max(lengths)
        counts.add({"input_ids": torch.zeros(len(lengths), width, dtype=torch.long),
                    "attention_mask": torch.tensor([[1] * n + [0] * (width - n) for n in lengths])})
    assert counts.take() == (990, 990, 640 + 350)
