"""Shared helpers for the studio-through-the-real-engine tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

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
