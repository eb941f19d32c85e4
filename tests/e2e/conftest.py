"""Shared helpers for the studio-through-the-real-engine tests."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = "the a function returns reads writes value list name error default module object".split()


def write_corpus(path: Path, documents: int, words_per_document: int, seed: int) -> Path:
    """A JSONL corpus of random sentences over a small vocabulary: quick to tokenize and to learn."""
    rng = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        for _ in range(documents):
            f.write(json.dumps({"text": " ".join(rng.choice(WORDS) for _ in range(words_per_document)) + "."}) + "\n")
    return path
