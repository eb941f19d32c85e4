"""The base model of a fine-tuning run (found by engine/models): loading it (4-bit for QLoRA), and the
PEFT adapter the method asks for.

Everything here goes through transformers and PEFT; the only checks of our own are the two
bitsandbytes pitfalls that fail silently otherwise (see `check_4bit_shapes` and `Quantized4bitGuard`).
"""

from __future__ import annotations

import torch
from torch import nn

from engine.errors import ModelError, first_line
from engine.models import check_positions
from engine.models.positions import check_rope_scaling, scale_rope
from engine.specs.finetune import FinetuneSpec, MethodSpec

# Output heads and embeddings never get LoRA adapters.
_NOT_TARGETS = {"lm_head", "embed_out", "output", "score", "classifier"}


def model_config(base: str, trust_remote_code: bool):
    """The model's configuration (its sizes, its positions), read without its weights."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - offline hub id, damaged config: the user's to fix
        raise ModelError(f"Could not read the configuration of {base} (model.path): {first_line(e)}",
                         "Check the folder or hub id (HF_HUB_OFFLINE=1 forbids downloads); a model that ships "
                         "its own code needs model.trust_remote_code: true.") from None


def check_max_length(config, max_length: int, owner: str) -> None:
    """Refuse a data.max_length longer than the positions of the model a training kind trains."""
    check_positions(config, max_length, "data.max_length", owner,
                    "Set data.max_length to at most that many tokens.")


def check_long_context(config, spec: FinetuneSpec, owner: str) -> str | None:
    """data.max_length against the base model's positions stretched by model.rope_scaling (errors as
    check_rope_scaling raises them); a warning sentence for a rotary model trained past its positions."""
    return check_rope_scaling(config, spec.model.rope_scaling, spec.data.max_length, "data.max_length", owner)


def meta_model(base: str, trust_remote_code: bool):
    """The model's structure without its weights (no memory), to count parameters and list layers."""
    from transformers import AutoModelForCausalLM

    config = model_config(base, trust_remote_code)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)


def linear_module_names(model: nn.Module) -> list[str]:
    """Names (last component) of the Linear layers an adapter can target, in model order."""
    names: dict[str, None] = {}
    for full_name, module in model.named_modules():
        leaf = full_name.rsplit(".", 1)[-1]
        if isinstance(module, nn.Linear) and leaf not in _NOT_TARGETS:
            names[leaf] = None
        elif type(module).__name__ == "Conv1D" and leaf not in _NOT_TARGETS:  # GPT-2's linear layers
            names[leaf] = None
    return list(names)


def targeted_shapes(model: nn.Module, targets: list[str] | None) -> list[tuple[int, int]]:
    """The (in, out) sizes of every layer an adapter on `targets` (layer names; None: every linear
    layer linear_module_names lists) goes on."""
    wanted = set(targets or linear_module_names(model))
    shapes = []
    for full_name, module in model.named_modules():
        if full_name.rsplit(".", 1)[-1] not in wanted:
            continue
        if isinstance(module, nn.Linear):
            shapes.append((module.in_features, module.out_features))
        elif type(module).__name__ == "Conv1D":  # GPT-2's linear layers: weight (in, out)
            shapes.append(tuple(module.weight.shape))
    return shapes


def check_4bit_shapes(model: nn.Module) -> None:
    """bitsandbytes packs 4-bit weights in blocks: a Linear whose output size is not a multiple of 32
    fails to load (on CPU) or loads wrong; say which layers before trying."""
    bad = [(name, module.out_features) for name, module in model.named_modules()
           if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] not in _NOT_TARGETS
           and module.out_features % 32]
    if bad:
        shown = ", ".join(f"{name} ({size})" for name, size in bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
        raise ModelError(
            f"This model cannot be loaded in 4 bits (method.name: qlora): bitsandbytes needs every linear layer's "
            f"output size to be a multiple of 32, and {shown} {'is' if len(bad) == 1 else 'are'} not.",
            "Use method.name: lora (the full-precision base), or a base model whose hidden and MLP sizes are "
            "multiples of 32.")


def load_model(base: str, spec: FinetuneSpec, device: str, dtype: torch.dtype):
    """The base model in the precision the method needs: 4-bit NF4/FP4 for QLoRA, else `dtype`."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"trust_remote_code": spec.model.trust_remote_code, "dtype": dtype}
    if spec.model.rope_scaling is not None:
        config = model_config(base, spec.model.trust_remote_code)
        scale_rope(config, spec.model.rope_scaling)
        kwargs["config"] = config
    if spec.method.name == "qlora":
        check_4bit_shapes(meta_model(base, spec.model.trust_remote_code))
        kwargs["quantization_config"] = quantization_config(spec.method)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the base model {base} (model.path): {first_line(e)}",
                         "Check that the folder holds a complete causal language model (config.json and weights).") from None
    if spec.method.name != "qlora":
        model.to(device)
    return model


def quantization_config(method: MethodSpec):
    from transformers import BitsAndBytesConfig

    q = method.quantization
    compute = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[q.compute_dtype]
    if q.bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=q.quant_type,
                              bnb_4bit_use_double_quant=q.double_quant, bnb_4bit_compute_dtype=compute)


def peft_config(spec: FinetuneSpec, model: nn.Module, total_steps: int, tokenizer_path: str):
    """The PEFT configuration of the method (None for full fine-tuning)."""
    import peft

    method = spec.method
    if method.name == "full":
        return None
    if method.name in ("lora", "qlora", "adalora"):
        available = linear_module_names(model)
        targets = method.lora.target_modules or available
        unknown = [t for t in targets if t not in available]
        if unknown:
            raise ModelError(f"method.lora.target_modules names {', '.join(unknown)}, which this model does not have.",
                             f"Its linear layers are: {', '.join(available)}.")
        common = dict(target_modules=targets, lora_dropout=method.lora.dropout, task_type="CAUSAL_LM")
        if method.name == "adalora":
            a = method.adalora
            return peft.AdaLoraConfig(init_r=a.initial_rank, target_r=a.target_rank, lora_alpha=method.lora.alpha,
                                      tinit=int(a.warmup_fraction * total_steps),
                                      tfinal=int(a.final_fraction * total_steps), total_step=total_steps, **common)
        return peft.LoraConfig(r=method.lora.rank, lora_alpha=method.lora.alpha, use_dora=method.lora.use_dora,
                               use_rslora=method.lora.use_rslora, **common)
    p = method.prompt_learning
    if method.name == "prefix":
        return peft.PrefixTuningConfig(num_virtual_tokens=p.virtual_tokens, task_type="CAUSAL_LM")
    if method.name == "prompt":
        if p.init_text:
            return peft.PromptTuningConfig(num_virtual_tokens=p.virtual_tokens, task_type="CAUSAL_LM",
                                           prompt_tuning_init=peft.PromptTuningInit.TEXT,
                                           prompt_tuning_init_text=p.init_text, tokenizer_name_or_path=tokenizer_path)
        return peft.PromptTuningConfig(num_virtual_tokens=p.virtual_tokens, task_type="CAUSAL_LM")
    return peft.PromptEncoderConfig(num_virtual_tokens=p.virtual_tokens, encoder_hidden_size=p.encoder_hidden_size,
                                    task_type="CAUSAL_LM")


def attach_adapter(spec: FinetuneSpec, model, total_steps: int, tokenizer_path: str, new_token_ids: list[int]):
    """Wrap the model for its method; returns (model, trainable parameter count)."""
    import peft

    if spec.method.name == "qlora":
        # Casts norms to fp32 and enables input gradients, as QLoRA needs; keeps the model in train mode.
        model = peft.prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.train.gradient_checkpointing)
    config = peft_config(spec, model, total_steps, tokenizer_path)
    if config is not None:
        if new_token_ids and hasattr(config, "trainable_token_indices"):
            # Tokens added for the chat template start untrained: let their embedding rows learn.
            config.trainable_token_indices = new_token_ids
        model = peft.get_peft_model(model, config)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return model, trainable


class Quantized4bitGuard:
    """On bitsandbytes 4-bit models a forward pass in eval/no-grad mode before training can leave most
    LoRA layers without gradients, silently. The job keeps the model in train mode throughout, and
    this guard checks, after the first backward pass, that every trainable adapter weight received a
    gradient, so a silent failure becomes a clear one."""

    def __init__(self, model):
        self.model = model

    def check(self) -> None:
        params = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        missing = [n for n, p in params if p.grad is None]
        if params and len(missing) > len(params) // 2:
            raise ModelError(
                f"{len(missing)} of {len(params)} adapter weights got no gradient in the first step "
                f"(e.g. {missing[0]}): the 4-bit base model stopped the gradients.",
                "This happens when the 4-bit model ran in eval/no-grad mode before training; set "
                "evaluation.before_training: false, or use method.name: lora.")

