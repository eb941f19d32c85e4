"""The policy of a preference or RL job (`dpo`, `grpo`, later `ppo`): where it is, loading it with its
SFT adapter merged in, the prompt layout it gets, its LoRA configuration, and saving the result.

A policy is found as every model entry is (engine/models: run ids, checkpoints, adapter folders) and
loaded with the generate job's loader (with its check that an adapter fits its model), so a policy
is named the same way a generate model is.

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
from engine.generate.models import load
from engine.generate.prompts import Prompt
from engine.kinds import KINDS
from engine.launch import rank
from engine.models import ModelChoice
from engine.rundir import atomic_directory
from engine.runner import JobContext
from engine.specs.chat import CHAT_PRESETS
from engine.specs.rlhf import RLMethod
from engine.training.model_card import model_card, usage
from engine.training.outputs import save_model_folder, write_metrics


@dataclass
class Policy:
    model: object  # a transformers causal LM, the SFT adapter merged in
    tokenizer: object
    choice: ModelChoice
    template: str | None  # the Jinja chat template prompts are laid out with; None = the prompt text as is
    stops: list[int]  # tokens that end an answer


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


def save_start_model(ctx: JobContext, model, tokenizer) -> None:
    """Write the start model where TRL can load it as the frozen reference of full training (it builds
    that reference from the policy's folder), and make the policy name that folder. Under a launcher
    each process writes and reads its own copy: no process group exists yet to wait for rank 0's."""
    folder = ctx.run.path / ("reference" if rank() == 0 else f"reference-rank{rank()}")
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


def save_policy(ctx: JobContext, model, tokenizer, template: str | None, summary: dict, description: str,
                state_dict: dict | None = None) -> Path:
    """output/policy: the trained policy as a whole model (a LoRA adapter merged into its base), loadable
    with AutoModelForCausalLM, with the tokenizer (carrying the chat template the policy was trained
    with) and a model card; output/metrics.json with `summary`."""
    from peft import PeftModel

    merged = isinstance(model, PeftModel)
    if merged:
        model = model.merge_and_unload()
    if template is not None:
        tokenizer.chat_template = template
    spec = ctx.spec
    start = spec.policy if spec.kind == "ppo" else spec.model
    card = model_card(spec, summary, tags=[spec.kind, "rlhf"], base_model=start.path, use=usage("AutoModelForCausalLM"),
                      description=f"`{start.path}`{f' + adapter `{start.adapter}`' if start.adapter else ''} trained "
                                  f"with {KINDS[spec.kind].title} in Atelier{description} (method {spec.method.name}"
                                  f"{'; its LoRA adapter is merged into this folder' if merged else ''}).")
    target = save_model_folder(ctx, "policy", model, tokenizer, card, state_dict=state_dict,
                               meta={"method": spec.method.name, "merged": merged, "role": "policy"})
    write_metrics(ctx, summary)
    return target


def _rows_on_disk(base: str) -> int | None:
    config = Path(base) / "config.json"
    if not config.exists():
        return None
    data = json.loads(config.read_text(encoding="utf-8"))
    return data.get("vocab_size") or data.get("text_config", {}).get("vocab_size")
