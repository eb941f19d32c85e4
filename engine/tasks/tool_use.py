"""A tool-use task with checkable answers (`builtin:tasks` with data.task: tools).

Each record offers three tools and asks for something one of them does; the answer is one call
with its arguments copied from the request:
- "What is the weather in Lisbon?" -> get_weather(city="Lisbon");
- "Add 3 and 8." -> add(a=3, b=8);
- "Set a timer for 12 minutes." -> set_timer(minutes=12).

Records are OpenAI-style messages (an assistant turn with `tool_calls`, a `tools` list), deterministic
by seed and all different from one another. The values are few (8 cities, digits, 12 timer lengths:
ROOM records in all) so that a model of a few hundred thousand parameters learns to copy them into
the call in a minute on a CPU.

Standard library only (the GUI may import this).
"""

from __future__ import annotations

import random

from engine.errors import DataError

TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                      "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
    {"type": "function", "function": {"name": "add", "description": "Sum of two integers.",
                                      "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                                                                                      "b": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "set_timer", "description": "Start a timer.",
                                      "parameters": {"type": "object",
                                                     "properties": {"minutes": {"type": "integer"}}}}},
]
CITIES = ("Lisbon", "Paris", "Oslo", "Rome", "Tokyo", "Lima", "Cairo", "Dublin")
DIGITS = range(2, 10)
MINUTES = range(5, 65, 5)
ASKS = {
    "get_weather": ("What is the weather in {city}?", "Is it raining in {city}?", "How warm is it in {city}?",
                    "Weather for {city}, please.", "Do I need a coat in {city}?"),
    "add": ("Add {a} and {b}.", "What is {a} plus {b}?", "Sum {a} and {b}.", "How much is {a} + {b}?",
            "Please add {a} to {b}."),
    "set_timer": ("Set a timer for {minutes} minutes.", "Remind me in {minutes} minutes.",
                  "Start a {minutes} minute timer.", "Time {minutes} minutes for me.", "Wake me in {minutes} minutes."),
}
ROOM = 5 * (len(CITIES) + len(DIGITS) ** 2 + len(MINUTES))  # different records the task has


def generate(count: int, seed: int) -> list[dict]:
    """`count` different tool-use records, the same for the same seed."""
    rng = random.Random(f"tools:{seed}")  # a string seed is hashed with SHA-512: stable across runs
    if count > ROOM:
        raise DataError(f"data.task_examples is {count:,}, but the tools task has {ROOM} different records.",
                        f"Set data.task_examples to at most {ROOM}.")
    seen: set[str] = set()
    records = []
    while len(records) < count:
        name = rng.choice(sorted(ASKS))
        if name == "get_weather":
            arguments = {"city": rng.choice(CITIES)}
        elif name == "add":
            arguments = {"a": rng.choice(DIGITS), "b": rng.choice(DIGITS)}
        else:
            arguments = {"minutes": rng.choice(MINUTES)}
        question = rng.choice(ASKS[name]).format(**arguments)
        if question in seen:
            continue
        seen.add(question)
        call = {"type": "function", "function": {"name": name, "arguments": arguments}}
        records.append({"messages": [{"role": "user", "content": question},
                                     {"role": "assistant", "content": "", "tool_calls": [call]}],
                        "tools": TOOLS, "task": "tools"})
    return records
