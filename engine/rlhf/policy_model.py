"""The policy of a preference or RL job (`dpo`, `grpo`, later `ppo`): where it is, loading it with its
SFT adapter merged in, the prompt layout it gets, its LoRA configuration, and saving the result.

Resolving and loading reuse the generate job's code (run ids, checkpoints, adapter folders, the
check that an adapter fits its model), so a policy is named the same way a generate model is.

An SFT adapter (`model.adapter`, or a fine-tuning run whose output is an adapter) is merged into its
base first: the policy then starts as the SFT model, and the reference model is that same model —
LoRA's adapter-disabled model, or for full training the start model TRL loads from disk — while
method.lora applies exactly as the spec says. Continuing to train the SFT adapter instead would
tie the run to that adapter's rank and target layers, and leave nothing that means "the model
before this run" for LoRA's reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import ModelError, TokenizerError
from engine.generate.models import ModelChoice, load
from engine.generate.prompts import Prompt
from engine.rlhf_specs import PolicyModel, RLMethod
from engine.rundir import atomic_directory
from engine.specs import CHAT_PRESETS


@dataclass
class Policy:
    model: object  # a transformers causal LM, the SFT adapter merged in
    tokenizer: object
    choice: ModelChoice
    template: str | None  # the Jinja chat template prompts are laid out with; None = the prompt text as is
    stops: list[int]  # tokens that end an answer


def resolve_policy(source: PolicyModel, workspace: Path | None, field: str = "model") -> ModelChoice:
    """The model and adapter folders `source` names (`field` is its place in the spec, for messages)."""
    # The generate job's resolution, with this spec's field names in its messages.
    from engine.generate.models import adapter_base, locate, model_name

    kind, location = locate(source.path, workspace, f"{field}.path")
    adapter, adapter_field = None, None
    if kind == "adapter":
        if source.adapter:
            raise ModelError(f"{location} ({field}.path) is itself a PEFT adapter, and {field}.adapter names another "
                             f"one.",
                             f"Put the base model in {field}.path and the adapter in {field}.adapter, or leave "
                             f"{field}.adapter empty to load {location} on the base model it was trained on.")
        adapter, adapter_field = location, f"{field}.path"
        base = adapter_base(adapter, adapter_field)
    else:
        base = location
        if source.adapter:
            adapter_kind, adapter = locate(source.adapter, workspace, f"{field}.adapter")
            if adapter_kind != "adapter":
                raise ModelError(f"{adapter} ({field}.adapter) is not a PEFT adapter: it has no adapter_config.json.",
                                 f"Point {field}.adapter at an adapter folder (a fine-tuning run's output/adapter) "
                                 f"or at its run, or put a whole model in {field}.path.")
            adapter_field = f"{field}.adapter"
    label = model_name(source.path, adapter or base)
    return ModelChoice(0, label, base, adapter, source.trust_remote_code, field, adapter_field)


def load_policy(choice: ModelChoice, device: str, dtype: torch.dtype, log) -> tuple[object, object, bool]:
    """(model in train mode, tokenizer, whether the model now differs from `choice.base` on disk: an
    adapter merged in, or embedding rows added for a larger tokenizer)."""
    model, tokenizer = load(choice, device, dtype, log)
    rows = model.get_input_embeddings().num_embeddings
    changed = bool(choice.adapter)
    if choice.adapter:
        model = model.merge_and_unload()
        model.requires_grad_(True)  # PEFT froze the base weights when it put the adapter on
        log("info", f"Merged the adapter {choice.adapter} into {choice.base}: the policy starts as that model.")
    on_disk = _rows_on_disk(choice.base)
    changed = changed or (on_disk is not None and rows != on_disk)
    tokenizer.padding_side = "left"  # TRL's generation pads prompts on the left
    model.train()
    return model, tokenizer, changed


def save_start_model(model, tokenizer, folder: Path) -> None:
    """Write the start model where TRL can load it as the frozen reference of full training (it builds
    that reference from the policy's folder), and make the policy name that folder."""
    with atomic_directory(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    model.config._name_or_path = str(folder)
    model.name_or_path = str(folder)


def prompt_template(tokenizer, choice: str, needs_chat: str | None, field: str, label: str, log) -> str | None:
    """The Jinja chat template `choice` (the spec's `field`) gives the policy, or None for the prompt
    text as is. `needs_chat` says where the data has several turns (which plain text cannot lay
    out), or is None."""
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # named templates: the default one is for chat
        own = own.get("default")
    if choice in CHAT_PRESETS:
        missing = [m for m in CHAT_PRESETS[choice][1] if m not in tokenizer.get_vocab()]
        if missing:
            log("warning", f"{', '.join(missing)} of the {choice} template are not tokens of {label}'s vocabulary, so "
                           f"the policy reads them as plain text; a model fine-tuned with {field}: {choice} has them.")
        return CHAT_PRESETS[choice][0]
    if own and choice != "none":
        return own
    if choice == "model":
        raise TokenizerError(f"The policy {label} has no chat template ({field}: model).",
                             f"Set {field}: chatml or plain to lay the conversations out with that template (best "
                             f"the one the policy was fine-tuned with), or {field}: auto.")
    if needs_chat:
        why = "has no chat template to lay them out with" if choice == "auto" else "is given no chat template"
        raise TokenizerError(f"{needs_chat} has several turns, but the policy {label} {why} ({field}: {choice}).",
                             f"Set {field}: chatml or plain (best the template the policy was fine-tuned with), "
                             f"or start from a model that has a chat template.")
    if choice == "auto":
        log("info", f"{label} has no chat template: prompts are given as plain text for it to continue.")
    return None


def prompt_text(prompt: Prompt, tokenizer, template: str | None) -> str:
    """The text the policy continues to answer `prompt`: the conversation through the chat template
    up to the assistant's turn (as fine-tuning renders it), or the prompt text as is. Its token ids
    are `engine.finetune.rendering.text_ids(prompt_text(...))`, which equal the generate job's
    `prompt_token_ids` for the same prompt."""
    from engine.finetune.rendering import generation_prompt

    if template is None:
        system = [m["content"] for m in prompt.messages if m["role"] == "system"]
        return "\n\n".join([*system, prompt.text])
    record = {"messages": [*prompt.messages, {"role": "assistant", "content": "x"}], "where": prompt.where}
    return generation_prompt(record, tokenizer, template)


def lora_config(method: RLMethod, model):
    """The PEFT LoRA configuration of `method` for `model`, or None for full training."""
    import peft

    from engine.finetune.model import linear_module_names

    if method.name == "full":
        return None
    available = linear_module_names(model)
    targets = method.lora.target_modules or available
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ModelError(f"method.lora.target_modules names {', '.join(unknown)}, which this model does not have.",
                         f"Its linear layers are: {', '.join(available)}.")
    return peft.LoraConfig(r=method.lora.rank, lora_alpha=method.lora.alpha, lora_dropout=method.lora.dropout,
                           target_modules=targets, use_dora=method.lora.use_dora, use_rslora=method.lora.use_rslora,
                           task_type="CAUSAL_LM")


def save_policy(model, tokenizer, template: str | None, target: Path, card: str) -> bool:
    """Write the trained policy to `target` atomically as a whole model (a LoRA adapter merged into
    its base), loadable with AutoModelForCausalLM, with the tokenizer (carrying the chat template
    the policy was trained with) and a model card. Returns whether an adapter was merged."""
    from peft import PeftModel

    merged = isinstance(model, PeftModel)
    if merged:
        model = model.merge_and_unload()
    if template is not None:
        tokenizer.chat_template = template
    with atomic_directory(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "README.md").write_text(card, encoding="utf-8")
    return merged


def model_card(kind: str, spec, summary: dict, spec_yaml: str) -> str:
    rows = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items())
    return f"""---
library_name: transformers
base_model: {spec.model.path}
tags: [atelier, {kind}, rlhf]
---

# {spec.name}

`{spec.model.path}`{f" + adapter `{spec.model.adapter}`" if spec.model.adapter else ""} trained with {kind.upper()} in
Atelier (method {spec.method.name}; a LoRA adapter is merged into this folder).

## Results

| metric | value |
|---|---|
{rows}

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
```

## Spec

```yaml
{spec_yaml.rstrip()}
```
"""


def _rows_on_disk(base: str) -> int | None:
    config = Path(base) / "config.json"
    if not config.exists():
        return None
    data = json.loads(config.read_text(encoding="utf-8"))
    return data.get("vocab_size") or data.get("text_config", {}).get("vocab_size")
