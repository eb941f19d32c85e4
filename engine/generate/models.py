"""The models of a generate job: the spec's entries found (engine/models: a model folder, a checkpoint,
a run, a hub id, a base model with a PEFT adapter) and labelled, loading them, and the prompt layout
each one gets.

Loading goes through transformers (safetensors first) and PEFT. The one check of our own: an
adapter whose saved weights do not all find their place in the base model is refused, since PEFT
drops weights for layers the base lacks without a word (only missing ones are warned about).
"""

from __future__ import annotations

from pathlib import Path

import torch

from engine.errors import ModelError, TokenizerError, first_line
from engine.models import ModelChoice, choice_tokenizer, resolve_choice, trained_on
from engine.specs.chat import CHAT_PRESETS
from engine.specs.generate import ModelSource


def resolve_models(sources: list[ModelSource], workspace: Path | None) -> list[ModelChoice]:
    """Every model of the spec found and labelled (labels made unique with ` #2`, ` #3`…)."""
    choices: list[ModelChoice] = []
    seen: set[str] = {s.label for s in sources if s.label}
    for i, source in enumerate(sources):
        choice = resolve_choice(source, workspace, f"models[{i}]", i)
        if not source.label:
            unique, n = choice.label, 2
            while unique in seen:
                unique, n = f"{choice.label} #{n}", n + 1
            choice.label = unique
        seen.add(choice.label)
        choices.append(choice)
    return choices


def load(choice: ModelChoice, device: str, dtype: torch.dtype, log) -> tuple:
    """(model in eval mode on `device`, tokenizer); the adapter's tokenizer when it saved one (a
    fine-tuning run that added chat markers did), the base model's otherwise."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    tokenizer = choice_tokenizer(choice)
    try:
        model = AutoModelForCausalLM.from_pretrained(choice.base, dtype=dtype,
                                                     trust_remote_code=choice.trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the model {choice.base} ({choice.entry}.path): {first_line(e)}",
                         "Check that the folder holds a complete causal language model (config.json and weights), "
                         "or that the hub id is right (HF_HUB_OFFLINE=1 forbids downloads); a model that ships its "
                         "own code needs trust_remote_code: true.") from None
    eos = model.generation_config.eos_token_id
    # The spec's sampling settings are the whole truth: none of the model's own defaults (a
    # repetition penalty, n-gram bans) may change what the recorded seed reproduces.
    model.generation_config = GenerationConfig(eos_token_id=eos)
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        model.resize_token_embeddings(len(tokenizer))
        if not choice.adapter:
            log("warning", f"{choice.label}: the tokenizer has {len(tokenizer)} tokens but the model only {rows} "
                           f"embeddings; the missing ones were added untrained.")
    if choice.adapter:
        model = _attach_adapter(model, choice, log)
    model.to(device)
    model.eval()
    return model, tokenizer


def prompt_template(tokenizer, choice: str, label: str, log) -> str | None:
    """The Jinja chat template `choice` gives this model's prompts, or None for the prompt text as is."""
    if choice == "none":
        return None
    if choice in CHAT_PRESETS:
        missing = [m for m in CHAT_PRESETS[choice][1] if m not in tokenizer.get_vocab()]
        if missing:
            log("warning", f"{label}: {', '.join(missing)} of the {choice} template are not tokens of its vocabulary, "
                           f"so the model reads them as plain text it was not trained on.")
        return CHAT_PRESETS[choice][0]
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # named templates: the default one is for chat
        own = own.get("default")
    if not own and choice == "model":
        raise TokenizerError(f"The tokenizer of {label} has no chat template (chat_template: model).",
                             "Set chat_template: auto (the prompt text as is for models without a template), or "
                             "chatml or plain to lay prompts out with that template.")
    return own or None


def stop_ids(model, tokenizer, template: str | None) -> list[int]:
    """The tokens that end an answer: eos, the template's end-of-turn marker, and any end tokens
    the model's own generation config lists (Llama 3's `<|eot_id|>`)."""
    from engine.finetune.rendering import stop_token_ids

    eos = model.generation_config.eos_token_id
    own = eos if isinstance(eos, list) else [eos] if eos is not None else []
    return list(dict.fromkeys(stop_token_ids(tokenizer, template) + own))


def _attach_adapter(model, choice: ModelChoice, log):
    from peft import PeftModel, get_peft_model_state_dict
    from peft.utils import load_peft_weights

    base_of_adapter = trained_on(choice.adapter)
    which = f"({base_of_adapter})" if base_of_adapter else "(its adapter_config.json does not say which)"
    hint = f"Use the adapter with the base model it was trained on {which}: put that model in {choice.entry}.path."
    try:
        model = PeftModel.from_pretrained(model, choice.adapter)
    except (RuntimeError, ValueError, KeyError) as e:
        raise ModelError(f"The adapter {choice.adapter} ({choice.adapter_field}) does not fit the model {choice.base}: "
                         f"{_mismatch_line(e)}.", hint) from None
    saved = load_peft_weights(choice.adapter, device="cpu")
    expected = get_peft_model_state_dict(model)
    unexpected, missing = sorted(set(saved) - set(expected)), sorted(set(expected) - set(saved))
    if unexpected or missing:
        example = unexpected[0] if unexpected else missing[0]
        what = (f"{len(unexpected)} of its weights have no place in it (e.g. {example})" if unexpected
                else f"it lacks {len(missing)} weights the model's layers need (e.g. {example})")
        raise ModelError(f"The adapter {choice.adapter} ({choice.adapter_field}) does not fit the model {choice.base}: "
                         f"{what}.", hint)
    if base_of_adapter and base_of_adapter not in (choice.base, str(Path(choice.base).resolve())):
        log("info", f"{choice.label}: the adapter was trained on {base_of_adapter}; its weights fit {choice.base}.")
    return model


def _mismatch_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if "mismatch" in line or "not found" in line), lines[0] if lines else "")
    return (detail or type(error).__name__).rstrip(".")

