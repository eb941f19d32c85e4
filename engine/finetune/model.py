"""The base model of a fine-tuning run: where it is, loading it (4-bit for QLoRA), and the PEFT
adapter the method asks for.

Everything here goes through transformers and PEFT; the only checks of our own are the two
bitsandbytes pitfalls that fail silently otherwise (see `check_4bit_shapes` and `Quantized4bitGuard`).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from engine.errors import ModelError
from engine.finetune_specs import FinetuneSpec, MethodSpec

# Output heads and embeddings never get LoRA adapters.
_NOT_TARGETS = {"lm_head", "embed_out", "output", "score", "classifier"}
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json", "adapter_model.safetensors")


def resolve_base(path: str, workspace: Path | None = None) -> str:
    """A local folder with weights, a run id of this workspace (its output model), or a hub id."""
    candidate = Path(path).expanduser()
    if workspace is not None and not candidate.exists() and (workspace / "runs" / path).is_dir():
        output = workspace / "runs" / path / "output"
        for name in ("merged", "model"):
            if (output / name / "config.json").exists():
                return str(output / name)
        raise ModelError(f"Run {path} (model.path) has no model in {output}.",
                         "Pick a completed pretraining or fine-tuning run, or a model folder.")
    if candidate.is_dir():
        if not (candidate / "config.json").exists():
            raise ModelError(f"{candidate} (model.path) is not a Hugging Face model folder: it has no config.json.",
                             "Point model.path at a folder written by save_pretrained, e.g. a pretraining run's "
                             "output/model.")
        if not any((candidate / name).exists() for name in _WEIGHT_FILES):
            present = ", ".join(sorted(p.name for p in candidate.iterdir())[:12]) or "nothing"
            raise ModelError(f"{candidate} (model.path) has a config.json but no weights (it holds: {present}).",
                             "Copy the model's .safetensors files into the folder, or save it again with "
                             "save_pretrained.")
        return str(candidate)
    if candidate.exists():
        raise ModelError(f"{candidate} (model.path) is a file; a model is a folder.", "Point model.path at the folder.")
    if "/" in path and not path.startswith((".", "/", "~")):
        return path  # a hub id: from_pretrained downloads it (or finds it in the cache offline)
    raise ModelError(f"The base model {path} (model.path) does not exist.",
                     "Give a model folder, a run id of this workspace, or a hub id such as owner/name.")


def meta_model(base: str, trust_remote_code: bool):
    """The model's structure without its weights (no memory), to count parameters and list layers."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(base, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - offline hub id, damaged config: the user's to fix
        raise ModelError(f"Could not read the configuration of {base} (model.path): {_first_line(e)}",
                         "Check the folder or hub id (HF_HUB_OFFLINE=1 forbids downloads); a model that ships "
                         "its own code needs model.trust_remote_code: true.") from None
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


def load_tokenizer(base: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(base, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"Could not load the tokenizer of {base} (model.path): {_first_line(e)}",
                         "The model folder needs its tokenizer files (tokenizer.json or the model's own).") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # batches need padding; labels mask it with -100 anyway
    return tokenizer


def load_model(base: str, spec: FinetuneSpec, device: str, dtype: torch.dtype):
    """The base model in the precision the method needs: 4-bit NF4/FP4 for QLoRA, else `dtype`."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"trust_remote_code": spec.model.trust_remote_code, "dtype": dtype}
    if spec.method.name == "qlora":
        check_4bit_shapes(meta_model(base, spec.model.trust_remote_code))
        kwargs["quantization_config"] = quantization_config(spec.method)
        kwargs["device_map"] = {"": device}
    try:
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except ModelError:
        raise
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the base model {base} (model.path): {_first_line(e)}",
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


def read_config(base: str) -> dict:
    path = Path(base) / "config.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
