"""Shared helpers for the studio-through-the-real-engine tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.tiny_models import save_model, tiny_llama

WORDS = "the a function returns reads writes value list name error default module object".split()


def write_corpus(path: Path, documents: int, words_per_document: int, seed: int) -> Path:
    """A JSONL corpus of random sentences over a small vocabulary: quick to tokenize and to learn."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(documents):
            f.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(words_per_document)) + "."}) + "\n")
    return path


@pytest.fixture
def one_thread_engines(monkeypatch):
    """The engines the studio starts in this test run torch with one thread: the studio (its charts and
    store), the engine and the test share a small machine, and torch's default thread pool, spinning
    at barriers on cores that are busy elsewhere, slows the tiny models' steps many times over."""
    from tests.engine.conftest import ONE_THREAD

    for name, value in ONE_THREAD.items():
        monkeypatch.setenv(name, value)


CHAT_WORDS = ("reverse the order of the words sort add numbers apple sky key snow cold hat tree river stone "
         "0 1 2 3 4 5 6 7 8 9 + = user assistant system").split()


def save_tiny_base_model(folder: Path) -> Path:
    """A tiny llama (random weights) with a byte-level BPE tokenizer that has ChatML's markers and
    template, saved as save_pretrained writes it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from engine.specs.chat import CHAT_PRESETS

    template, markers = CHAT_PRESETS["chatml"]
    specials = ["<|endoftext|>", "<|pad|>", *markers]
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator([" ".join(CHAT_WORDS)] * 50, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|pad|>")
    fast.chat_template = template
    return save_model(folder, tiny_llama(fast, max_positions=128, seed=None), fast)
