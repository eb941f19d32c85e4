"""Fixtures of the DPO and GRPO tests: a tiny policy model with and without a chat template."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from tests.tiny_models import save_model, tiny_byte_bpe, tiny_llama


def tiny_policy(root: Path) -> SimpleNamespace:
    """A tiny llama (~40k parameters) whose byte-level tokenizer has the chatml template and markers,
    and the same model under a tokenizer without a chat template."""
    from engine.specs.chat import CHAT_PRESETS
    from engine.tasks.generators import generate

    texts = [f"{r['instruction']}\n\n{r['input']} {r['output']}" for r in generate("addition", 200, 0)]
    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=256, chat_template=False)
    model = tiny_llama(tokenizer, max_positions=256)
    plain = save_model(root / "no-template", model, tokenizer)
    tokenizer.chat_template = CHAT_PRESETS["chatml"][0]
    chat = save_model(root / "chat", model, tokenizer)
    return SimpleNamespace(chat=chat, plain=plain)
