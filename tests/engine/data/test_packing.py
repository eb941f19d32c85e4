"""Packing documents into fixed-length blocks for causal and masked language modelling."""

from __future__ import annotations

import datasets
import pytest

from engine.data.packing import pack_for_causal_lm, pack_for_masked_lm
from engine.data.tokenizer_training import train_tokenizer
from engine.errors import DataError
from engine.specs.tokenizer import TokenizerTraining

TEXTS = [f"Document number {i} says that the parser returns item {i * 7} from the queue." for i in range(200)]


@pytest.fixture(scope="module")
def clm_tokenizer():
    return train_tokenizer(TEXTS, TokenizerTraining(algorithm="byte-bpe", vocab_size=400), 64, "clm")


@pytest.fixture(scope="module")
def mlm_tokenizer():
    return train_tokenizer(TEXTS, TokenizerTraining(algorithm="wordpiece", vocab_size=400), 64, "mlm")


def docs(texts: list[str]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": texts})


def test_causal_blocks_have_exact_length_and_keep_every_token_in_order(clm_tokenizer):
    tok = clm_tokenizer
    packed = pack_for_causal_lm(docs(TEXTS), tok, context_length=32)
    assert packed.column_names == ["input_ids"]
    blocks = list(packed["input_ids"])
    assert blocks and all(len(b) == 32 for b in blocks)
    stream = []
    for text in TEXTS:
        stream += [tok.bos_token_id, *tok.encode(text, add_special_tokens=False), tok.eos_token_id]
    assert len(blocks) == len(stream) // 32  # only the final partial block is dropped
    assert [t for b in blocks for t in b] == stream[:len(blocks) * 32]


def test_causal_documents_are_separated_by_eos_then_bos(clm_tokenizer):
    tok = clm_tokenizer
    text = tok.decode(pack_for_causal_lm(docs(TEXTS), tok, 64)[0]["input_ids"])
    assert text.startswith("<|bos|>Document number")
    assert "from the queue.<|eos|><|bos|>Document number" in text


def test_causal_packing_with_several_processes(clm_tokenizer):
    one = list(pack_for_causal_lm(docs(TEXTS * 6), clm_tokenizer, 32)["input_ids"])
    two = list(pack_for_causal_lm(docs(TEXTS * 6), clm_tokenizer, 32, num_proc=2)["input_ids"])
    assert all(len(b) == 32 for b in two)
    # Each process packs its own shard, so only the blocks at shard ends may differ.
    assert abs(len(one) - len(two)) <= 2 and one[:100] == two[:100]


def test_masked_blocks_are_wrapped_in_cls_and_sep(mlm_tokenizer):
    tok = mlm_tokenizer
    packed = pack_for_masked_lm(docs(TEXTS), tok, context_length=24)
    blocks = list(packed["input_ids"])
    assert blocks and all(len(b) == 24 for b in blocks)
    assert all(b[0] == tok.cls_token_id and b[-1] == tok.sep_token_id for b in blocks)
    inner = [t for b in blocks for t in b[1:-1]]
    assert tok.sep_token_id in inner  # documents are joined with [SEP]
    assert tok.cls_token_id not in inner


def test_too_few_tokens_for_one_block_says_how_many(clm_tokenizer):
    with pytest.raises(DataError) as info:
        pack_for_causal_lm(docs(["a short document"]), clm_tokenizer, context_length=256)
    n_tokens = len(clm_tokenizer.encode("a short document", add_special_tokens=False)) + 2
    assert f"{n_tokens} tokens" in info.value.message and "256" in info.value.message
    assert "context_length" in info.value.hint and "add" in info.value.hint


def test_masked_too_few_tokens(mlm_tokenizer):
    with pytest.raises(DataError) as info:
        pack_for_masked_lm(docs(["tiny"]), mlm_tokenizer, context_length=128)
    assert "tokens" in info.value.message and "context_length" in info.value.hint
