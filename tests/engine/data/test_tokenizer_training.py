"""Training tokenizers of each algorithm, saving and loading them, and exact byte-level round trips."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from engine.data.builtin import python_docs_documents
from engine.data.tokenizer_training import BYTE_TOKENS, load_tokenizer, train_tokenizer
from engine.errors import TokenizerError
from engine.specs.tokenizer import TokenizerTraining

ALGORITHMS = ["byte-bpe", "bpe", "unigram", "wordpiece"]
SAMPLE = "Return the list of names, sorted; raise ValueError when it is empty."


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    # A tenth of the built-in corpus: varied real prose, and quick to train on.
    return [d["text"] for d in python_docs_documents()[::10]]


@pytest.fixture(scope="module")
def byte_bpe(corpus):
    return train_tokenizer(corpus, TokenizerTraining(algorithm="byte-bpe", vocab_size=1000), 128, "clm")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("objective", ["clm", "mlm"])
def test_each_algorithm_respects_vocab_size_and_sets_special_tokens(corpus, algorithm, objective):
    tok = train_tokenizer(corpus, TokenizerTraining(algorithm=algorithm, vocab_size=600), 128, objective)
    assert 300 < len(tok) <= 600
    assert tok.model_max_length == 128
    ids = tok(SAMPLE)["input_ids"]
    if objective == "clm":
        assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == \
            ("<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>")
        assert ids[0] == tok.bos_token_id  # prompts start the way packed training documents do
    else:
        assert (tok.cls_token, tok.sep_token, tok.mask_token, tok.pad_token, tok.unk_token) == \
            ("[CLS]", "[SEP]", "[MASK]", "[PAD]", "[UNK]")
        assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id
    assert tok.unk_token_id not in ids
    words = tok.decode(ids, skip_special_tokens=True).split()
    assert words == SAMPLE.split() or algorithm == "wordpiece"  # BERT decoding spaces out punctuation


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_saved_tokenizer_loads_with_auto_tokenizer(tmp_path, corpus, algorithm):
    objective = "mlm" if algorithm == "wordpiece" else "clm"
    tok = train_tokenizer(corpus, TokenizerTraining(algorithm=algorithm, vocab_size=500), 64, objective)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded.special_tokens_map == tok.special_tokens_map
    assert loaded(SAMPLE)["input_ids"] == tok(SAMPLE)["input_ids"]
    assert loaded.model_max_length == 64
    assert load_tokenizer(str(tmp_path)).pad_token == tok.pad_token


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_byte_bpe_round_trips_any_text(byte_bpe, text):
    assert byte_bpe.decode(byte_bpe.encode(text, add_special_tokens=False)) == text


def test_byte_bpe_never_produces_unknown_tokens(byte_bpe):
    text = "naïve café — 日本語 🙂\x00\t\r\n  end"
    ids = byte_bpe.encode(text, add_special_tokens=False)
    assert byte_bpe.unk_token_id not in ids and byte_bpe.decode(ids) == text


def test_bpe_falls_back_to_byte_tokens(corpus, tmp_path):
    tok = train_tokenizer(corpus, TokenizerTraining(algorithm="bpe", vocab_size=600), 64)
    vocab = tok.get_vocab()
    assert all(b in vocab for b in BYTE_TOKENS)
    ids = tok.encode("snowman ☃ here", add_special_tokens=False)
    assert tok.convert_tokens_to_ids("<0xE2>") in ids  # ☃ is E2 98 83 in UTF-8, unseen in training
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == "snowman ☃ here"
    # Byte tokens are ordinary vocabulary, so skipping special tokens keeps them.
    assert tok.decode(ids, skip_special_tokens=True) == "snowman ☃ here"


def test_too_small_vocab_is_a_tokenizer_error(corpus):
    with pytest.raises(TokenizerError) as info:
        train_tokenizer(corpus, TokenizerTraining(algorithm="byte-bpe", vocab_size=256), 64)
    assert "261" in info.value.message and "vocab_size" in info.value.hint


def test_progress_counts_texts(corpus):
    calls = []
    train_tokenizer(corpus, TokenizerTraining(vocab_size=400), 64, progress=lambda *a: calls.append(a))
    assert calls and calls[-1][1] == len(corpus)


def test_load_tokenizer_missing_folder(tmp_path):
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(str(tmp_path / "no-tokenizer-here"))
    assert "no-tokenizer-here" in info.value.message and info.value.hint


def test_load_tokenizer_folder_without_tokenizer(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing", encoding="utf-8")
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(str(tmp_path))
    assert str(tmp_path) in info.value.message and "tokenizer.json" in info.value.message


def test_load_tokenizer_damaged_file(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{broken", encoding="utf-8")
    with pytest.raises(TokenizerError) as info:
        load_tokenizer(str(tmp_path))
    assert str(tmp_path) in info.value.message


def test_load_tokenizer_hub_id_offline():
    with pytest.raises(TokenizerError) as info:
        load_tokenizer("someone/some-tokenizer")
    assert "someone/some-tokenizer" in info.value.message


def test_load_tokenizer_without_pad_uses_eos(tmp_path, byte_bpe):
    byte_bpe.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.pop("pad_token", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    special_map = tmp_path / "special_tokens_map.json"
    if special_map.exists():
        data = json.loads(special_map.read_text(encoding="utf-8"))
        data.pop("pad_token", None)
        special_map.write_text(json.dumps(data), encoding="utf-8")
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.pad_token == "<|eos|>"
