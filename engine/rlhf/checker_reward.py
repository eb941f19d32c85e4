"""Rewards from a built-in task's checker: 1.0 for an answer the checker accepts, 0.0 otherwise.

For GRPO, PPO and the demo, with `builtin:tasks` prompts (engine/tasks/generators.py), whose answers
are exact. Standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from engine.tasks.generators import check

QUESTION = "question"  # the dataset column (and keyword) holding each prompt's task question


def score(task: str, record: dict, answer: str) -> float:
    """1.0 when `answer` answers the question of `record` (a generated task record, or {"input":
    question}) correctly, else 0.0."""
    return 1.0 if check(task, record, answer) else 0.0


def answer_text(completion: str | list[dict]) -> str:
    """The text of a completion: a string, or (conversational prompts) a list of messages whose last
    assistant message is the answer."""
    if isinstance(completion, str):
        return completion
    said = [m.get("content") or "" for m in completion if m.get("role") == "assistant"]
    return said[-1] if said else ""


def checker_reward(task: str) -> Callable[..., list[float]]:
    """A reward function in TRL's form (GRPOTrainer's `reward_funcs`): called with the prompts, the
    completions and every other column of the batch as keywords; the question of each completion is
    in the `question` column (a task record's "input", e.g. "347 + 58")."""

    def checker(prompts: Sequence, completions: Sequence, question: Sequence[str], **_) -> list[float]:
        return [score(task, {"input": q}, answer_text(c)) for q, c in zip(question, completions)]

    return checker
