"""Fixtures of the preference tests: answers to built-in addition tasks, right or wrong, that a test
judges (or pairs) without a model."""

from __future__ import annotations


def addition_answers(count: int, seed: int) -> list[tuple[str, str, bool]]:
    """(prompt, answer, right) of built-in addition tasks: a wrong answer, then a right one, alternately."""
    from engine.tasks.generators import generate

    return [(f"{r['instruction']}\n\n{r['input']}", r["output"] if i % 2 else str(int(r["output"]) + 1 + i % 7),
             bool(i % 2)) for i, r in enumerate(generate("addition", count, seed))]
