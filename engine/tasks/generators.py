"""Instruction tasks with exact, checkable answers (`builtin:tasks`).

- addition: "Add the two numbers." / "347 + 58" -> "405";
- reverse: "Reverse the order of the words." / "cat red sun" -> "sun red cat";
- sort: "Sort the words alphabetically." / "sun cat red" -> "cat red sun".

Items are small (2-3 digit numbers, 3-5 words from a vocabulary of common short words) so that a
model of about a million parameters learns them on a CPU in minutes, and a fine-tuning run shows
that it learned, not only that it ran. Records are alpaca-style ({"instruction", "input",
"output", "task"}), deterministic by seed, and all different from one another, so any split of
them into train and eval has no item in both.

Standard library only (the GUI may import this).
"""

from __future__ import annotations

import random

from engine.finetune.metrics import exact_match

TASKS = {"addition", "reverse", "sort"}
INSTRUCTIONS = {
    "addition": "Add the two numbers.",
    "reverse": "Reverse the order of the words.",
    "sort": "Sort the words alphabetically.",
}
WORDS = (
    "apple", "bird", "blue", "boat", "book", "bread", "cake", "car", "cat", "cloud", "cold", "cup", "day", "dog",
    "door", "egg", "fish", "flower", "game", "girl", "gold", "green", "hand", "hat", "hill", "home", "horse",
    "house", "jam", "key", "king", "lake", "leaf", "lamp", "milk", "moon", "night", "paper", "pen", "rain", "red",
    "river", "road", "rock", "salt", "sea", "ship", "shoe", "sky", "snow", "song", "star", "stone", "sun", "table",
    "tea", "town", "tree", "water", "wind",
)
MIN_WORDS, MAX_WORDS = 3, 5


def generate(task: str, count: int, seed: int) -> list[dict]:
    """`count` different examples of `task`, the same for the same seed.

    Addition uses numbers of 2 and 3 digits, and more digits only when `count` asks for more
    distinct pairs than those offer.
    """
    _check_task(task)
    rng = random.Random(f"{task}:{seed}")  # a string seed is hashed with SHA-512: stable across runs
    high = 999
    while task == "addition" and (high - 9) ** 2 < 2 * count:  # room for `count` distinct pairs
        high = high * 10 + 9
    seen: set[str] = set()
    records = []
    while len(records) < count:
        if task == "addition":
            question = f"{rng.randint(10, high)} + {rng.randint(10, high)}"
        else:
            question = " ".join(rng.sample(WORDS, rng.randint(MIN_WORDS, MAX_WORDS)))
        if question in seen:
            continue
        seen.add(question)
        records.append({"instruction": INSTRUCTIONS[task], "input": question, "output": solve(task, question),
                        "task": task})
    return records


def solve(task: str, question: str) -> str:
    """The exact answer to `question` (a record's "input") for `task`."""
    _check_task(task)
    if task == "addition":
        left, _, right = question.partition("+")
        return str(int(left) + int(right))
    words = question.split()
    return " ".join(reversed(words) if task == "reverse" else sorted(words))


def check(task: str, question_record: dict, answer: str) -> bool:
    """Whether `answer` answers the question of `question_record` correctly.

    `question_record` is a generated record (its "input" is the question) or a normalised one
    ({"messages": [...]}: the question is the last paragraph of the last user message).
    Whitespace is ignored, and numbers compare by value ("405." is right for 405).
    """
    question = question_record.get("input")
    if question is None:
        users = [m["content"] for m in question_record.get("messages", []) if m.get("role") == "user"]
        if not users:
            raise ValueError("the record has neither an 'input' nor a user message")
        question = users[-1].split("\n\n")[-1]
    try:
        expected = solve(task, question)
    except ValueError as e:
        raise ValueError(f"not a {task} question: {question!r}") from e
    return exact_match(answer, expected)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(sorted(TASKS))}")
