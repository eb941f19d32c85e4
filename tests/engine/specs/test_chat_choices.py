"""Every chat_template a spec or serve request takes offers every chat preset (engine/specs/chat.py):
one list, so a preset added there is offered by every kind at once."""

from __future__ import annotations

from engine.kinds import KINDS
from engine.serve.protocol import GenerateRequest
from engine.specs.chat import CHAT_PRESETS


def chat_template_choices(schema: dict) -> list[list[str]]:
    """The enum of every property called chat_template anywhere in a JSON schema."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            for name, value in node.items():
                if name == "chat_template" and isinstance(value, dict) and "enum" in value:
                    found.append(value["enum"])
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return found


def test_every_kind_and_serve_offer_every_chat_preset():
    offering = {name: chat_template_choices(kind.spec.model_json_schema()) for name, kind in KINDS.items()}
    offering["serve"] = chat_template_choices(GenerateRequest.model_json_schema())
    asked = {name: choices for name, choices in offering.items() if choices}
    assert {"finetune", "generate", "evaluate", "dpo", "grpo", "ppo", "serve", "export"} <= set(asked)
    for name, choices in asked.items():
        for enum in choices:
            assert set(CHAT_PRESETS) <= set(enum), f"{name}: {enum}"
