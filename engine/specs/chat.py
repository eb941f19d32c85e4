"""Chat-template presets: the Jinja templates a tokenizer can be given, with the marker tokens each needs.

Read by the tokenizer spec, the fine-tuning renderer, generation, evaluation and serving. Pure data.
"""

from __future__ import annotations

from typing import Literal

# Chat-template presets: (Jinja template, special tokens it needs in the vocabulary). chatml and llama3
# take tools (`apply_chat_template(..., tools=...)`): the definitions, one JSON object a line, in a
# system turn put first (with the conversation's own system prompt); an assistant's calls as JSON
# after its text (chatml: each in <tool_call></tool_call>, as Hermes and Qwen write them; llama3:
# {"name", "parameters"}, as Llama 3.1 does); a tool's result as a turn of its own (chatml's "tool",
# Llama's "ipython"). A conversation without tools renders as it did before they took them.
_FIRST_SYSTEM_WITH_TOOLS = "tools and loop.first and message['role'] == 'system'"
_CALLS = "message.tool_calls is defined and message.tool_calls"
CHAT_PRESETS: dict[str, tuple[str, list[str]]] = {
    "chatml": (
        "{% if tools %}{{ '<|im_start|>system\\n' }}{% if messages[0]['role'] == 'system' %}"
        "{{ messages[0]['content'] + '\\n\\n' }}{% endif %}"
        "{{ 'You can call these tools. For each call, answer with <tool_call>{\"name\": ..., \"arguments\": ...}"
        "</tool_call>.\\n<tools>\\n' }}{% for tool in tools %}{{ tool | tojson + '\\n' }}{% endfor %}"
        "{{ '</tools><|im_end|>\\n' }}{% endif %}"
        "{% for message in messages %}{% if not (" + _FIRST_SYSTEM_WITH_TOOLS + ") %}"
        "{{ '<|im_start|>' + message['role'] + '\\n' + (message['content'] or '') }}"
        "{% if " + _CALLS + " %}{% for call in message.tool_calls %}"
        "{% if message['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
        "{{ '<tool_call>' + {'name': call['function']['name'], 'arguments': call['function']['arguments']} | tojson"
        " + '</tool_call>' }}{% endfor %}{% endif %}"
        "{{ '<|im_end|>' + '\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
        ["<|im_start|>", "<|im_end|>"]),
    "llama3": (
        "{{ bos_token }}{% if tools %}{{ '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
        "{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] | trim + '\\n\\n' }}{% endif %}"
        "{{ 'You can call these functions. For a call, answer with {\"name\": ..., \"parameters\": ...}.\\n\\n' }}"
        "{% for tool in tools %}{{ tool | tojson + '\\n\\n' }}{% endfor %}{{ '<|eot_id|>' }}{% endif %}"
        "{% for message in messages %}{% if not (" + _FIRST_SYSTEM_WITH_TOOLS + ") %}"
        "{{ '<|start_header_id|>' + ('ipython' if message['role'] == 'tool' else message['role']) + "
        "'<|end_header_id|>\\n\\n' + (message['content'] or '') | trim }}"
        "{% if " + _CALLS + " %}{% for call in message.tool_calls %}"
        "{% if message['content'] or not loop.first %}{{ '\\n' }}{% endif %}"
        "{{ {'name': call['function']['name'], 'parameters': call['function']['arguments']} | tojson }}"
        "{% endfor %}{% endif %}{{ '<|eot_id|>' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}",
        ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]),
    "plain": (
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ message['content'] + '\\n\\n' }}"
        "{% else %}{{ message['role'] | capitalize + ': ' + message['content'] + '\\n' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}",
        []),
}

# The chat_template choices of every kind and of serve, made from the presets so that a new preset is
# offered everywhere at once: the model's own template, or a preset; kinds that may ask a base model
# to continue plain text add "none". (Literal takes a tuple at run time; pydantic reads it as the list.)
TEMPLATE_CHOICES: tuple[str, ...] = ("auto", "model", *CHAT_PRESETS)
PROMPT_TEMPLATE_CHOICES: tuple[str, ...] = (*TEMPLATE_CHOICES, "none")
ChatTemplateChoice = Literal[TEMPLATE_CHOICES]  # type: ignore[valid-type]
PromptTemplateChoice = Literal[PROMPT_TEMPLATE_CHOICES]  # type: ignore[valid-type]
PRESET_NAMES = ", ".join(CHAT_PRESETS)  # for descriptions: "chatml, llama3, plain"
