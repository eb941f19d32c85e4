"""`studio-engine import-config`: a LLaMA-Factory or Axolotl training YAML as an Atelier spec, with
every setting accounted for — mapped (to which field, with which value), or not mapped and why.

LLaMA-Factory (its examples/ and docs): `stage` pt, sft, rm, ppo, dpo or kto; `finetuning_type`
lora, full or freeze (and `quantization_bit` for QLoRA); `dataset` names of a dataset_info.json
under `dataset_dir`; `template`; the Trainer's arguments. Axolotl (its config reference):
`base_model`, `datasets` of {path, type}, `adapter` lora or qlora (`load_in_4bit`/`load_in_8bit`),
`rl` dpo, ipo, orpo, simpo or kto, `micro_batch_size` and the like.

The mapping is a table per tool: one place says what each key becomes. The result is checked by the
spec models (parse_spec) before it is written. Light: PyYAML and the specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from engine.errors import UserError
from engine.kinds import KINDS


class ConfigError(UserError):
    type = "config_error"


@dataclass
class Imported:
    """The spec made of a config, and each of the config's settings: mapped or not, and why."""

    tool: str  # "LLaMA-Factory" or "Axolotl"
    spec: dict
    mapped: list[tuple[str, str, Any]] = field(default_factory=list)  # (config key, spec field, value)
    unmapped: list[tuple[str, str]] = field(default_factory=list)  # (config key, why)

    def to_json(self) -> dict:
        return {"tool": self.tool, "spec": self.spec,
                "mapped": [{"key": k, "field": f, "value": v} for k, f, v in self.mapped],
                "unmapped": [{"key": k, "why": why} for k, why in self.unmapped]}

    def set(self, key: str, dotted: str, value: Any) -> None:
        node = self.spec
        *parents, leaf = dotted.split(".")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = value
        self.mapped.append((key, dotted, value))

    def skip(self, key: str, why: str) -> None:
        self.unmapped.append((key, why))


def import_config(path: Path | str) -> Imported:
    """The spec a LLaMA-Factory or Axolotl YAML file describes. Raises ConfigError for a file that is
    neither (saying which keys tell them apart)."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise ConfigError(f"Cannot read the config {path}: {e}", "Give a LLaMA-Factory or Axolotl training YAML.") \
            from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} is not a YAML mapping of settings.", "Give a LLaMA-Factory or Axolotl training YAML.")
    if "stage" in config or "model_name_or_path" in config:
        return _llamafactory(config)
    if "base_model" in config or "datasets" in config:
        return _axolotl(config)
    raise ConfigError(f"{path} is neither a LLaMA-Factory config (stage, model_name_or_path) nor an Axolotl config "
                    "(base_model, datasets).", "Give the YAML you train with in one of those tools.")


# -- shared ---------------------------------------------------------------------------------------

_SCHEDULES = {"cosine": "cosine", "linear": "linear", "constant": "constant", "constant_with_warmup": "constant"}
_PRECISIONS = (("bf16", "bf16"), ("pure_bf16", "bf16"), ("fp16", "fp16"))
_OUTPUT = "Atelier writes every run to its own run directory (runs/<id>/output) and never overwrites one"
_NO_EFFECT = "has no counterpart: Atelier decides it itself"


def _number(value: Any) -> Any:
    """YAML 1.1 reads `1.0e-4` as a float but `1e-4` as a string; both tools accept either."""
    if isinstance(value, str):
        try:
            return float(value) if any(c in value for c in ".eE") else int(value)
        except ValueError:
            return value
    return value


def _training(out: Imported, config: dict, keys: dict[str, str], steps_key: str = "max_steps") -> None:
    """The Trainer settings both tools spell (almost) as transformers does."""
    for key, dotted in keys.items():
        if config.get(key) is not None:
            out.set(key, dotted, _number(config[key]))
    if config.get("lr_scheduler_type", config.get("lr_scheduler")) is not None:
        key = "lr_scheduler_type" if "lr_scheduler_type" in config else "lr_scheduler"
        schedule = _SCHEDULES.get(str(config[key]))
        if schedule:
            out.set(key, "train.schedule", schedule)
        else:
            out.skip(key, f"the schedule {config[key]} is not one of Atelier's (cosine, linear, constant)")
    ratio = config.get("warmup_ratio")
    if ratio is not None:
        steps = config.get(steps_key)
        if steps and int(_number(steps)) > 0:
            out.set("warmup_ratio", "train.warmup_steps", round(float(_number(ratio)) * int(_number(steps))))
        else:
            out.skip("warmup_ratio", "Atelier counts warm-up in steps and the run's length in steps is not set: set "
                                     "train.warmup_steps")
    for key, precision in _PRECISIONS:
        if config.get(key) is True:
            out.set(key, "resources.precision", precision)
    reporters = config.get("report_to")
    if reporters is not None:
        chosen = [r for r in ([reporters] if isinstance(reporters, str) else reporters or [])
                  if r in ("tensorboard", "wandb")]
        if chosen:
            out.set("report_to", "train.report_to", chosen)
        else:
            out.skip("report_to", f"{reporters}: Atelier reports to tensorboard and wandb (its events always)")


def _epochs(out: Imported, key: str, value: Any) -> None:
    out.skip(key, f"{value} epochs: Atelier counts a run in optimizer steps; set train.max_steps to epochs × records ÷ "
                  "(batch size × accumulation × devices) — `studio-engine preview` counts the records")


def _template(out: Imported, key: str, name: Any, field: str) -> None:
    if name == "chatml":
        out.set(key, field, "chatml")
    elif name in ("empty", "default"):  # the tools' plain "Human: …\nAssistant: …" layouts
        out.set(key, field, "plain")
    else:
        out.set(key, field, "auto")
        out.skip(key, f"the template '{name}' is not carried over as such: Atelier uses the model's own chat template "
                      "(auto), which that template usually copies; check the layout with `studio-engine preview`")


# -- LLaMA-Factory --------------------------------------------------------------------------------

_LF_KINDS = {"sft": "finetune", "pt": "finetune", "rm": "reward", "dpo": "dpo", "kto": "kto", "ppo": "ppo"}
_LF_TRAIN = {"per_device_train_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.gradient_accumulation",
             "learning_rate": "train.learning_rate", "max_steps": "train.max_steps", "warmup_steps": "train.warmup_steps",
             "weight_decay": "train.weight_decay", "max_grad_norm": "train.max_grad_norm",
             "logging_steps": "train.log_every", "save_steps": "train.checkpoint_every",
             "eval_steps": "train.eval_every", "save_total_limit": "train.keep_checkpoints",
             "dataloader_num_workers": "train.dataloader_workers"}
_LF_PPO_TRAIN = {"learning_rate": "train.learning_rate", "max_grad_norm": "train.max_grad_norm",
                 "max_steps": "train.iterations", "save_steps": "train.checkpoint_every", "eval_steps": "train.eval_every"}
_LF_LOSSES = {"sigmoid": "sigmoid", "ipo": "ipo", "orpo": "orpo", "simpo": "simpo"}
_LF_SILENT = {
    "do_train": "Atelier's run trains; do_eval and do_predict are its evaluation settings",
    "output_dir": _OUTPUT, "overwrite_output_dir": _OUTPUT, "overwrite_cache": "Atelier keeps no dataset cache",
    "plot_loss": "the studio charts every metric live", "preprocessing_num_workers": _NO_EFFECT,
    "ddp_timeout": _NO_EFFECT, "per_device_eval_batch_size": "held-out batches are train.batch_size",
    "eval_strategy": "evaluation runs every train.eval_every steps when data is held out",
    "evaluation_strategy": "evaluation runs every train.eval_every steps when data is held out",
    "save_strategy": "checkpoints are every train.checkpoint_every steps", "dataset_dir": "read with dataset",
    "resume_from_checkpoint": "resume a run with `studio-engine resume RUN`",
    "flash_attn": "Atelier picks the attention implementation itself",
    "quantization_method": "Atelier quantizes with bitsandbytes",
}


def _llamafactory(config: dict) -> Imported:
    stage = str(config.get("stage", "sft"))
    kind = _LF_KINDS.get(stage)
    if kind is None:
        raise ConfigError(f"LLaMA-Factory's stage '{stage}' has no Atelier kind.",
                        f"Stages Atelier imports: {', '.join(_LF_KINDS)}.")
    out = Imported("LLaMA-Factory", {"kind": kind, "name": f"{kind}-imported"})
    out.mapped.append(("stage", "kind", kind))
    seen = {"stage"}
    model_field = "policy" if kind == "ppo" else "model"
    policy = KINDS[kind].stage in ("policy", "reward")  # kinds that start from a model with its adapter

    def take(key: str, action: Callable[[Any], None]) -> None:
        seen.add(key)
        if key in config and config[key] is not None:
            action(config[key])

    take("model_name_or_path", lambda v: out.set("model_name_or_path", f"{model_field}.path", str(v)))
    take("trust_remote_code", lambda v: out.set("trust_remote_code", f"{model_field}.trust_remote_code", bool(v)))
    take("adapter_name_or_path", lambda v: out.set("adapter_name_or_path", f"{model_field}.adapter", str(v))
         if policy else out.skip("adapter_name_or_path", "fine-tuning starts a new adapter; merge the old one into the "
                                                         "model first (kind: merge)"))
    _lf_method(out, config, kind, seen)
    _lf_data(out, config, kind, seen)
    if kind == "ppo":
        _training(out, config, _LF_PPO_TRAIN)
        take("reward_model", lambda v: out.set("reward_model", "reward_model", str(v)))
        take("per_device_train_batch_size", lambda v: out.set("per_device_train_batch_size",
                                                              "train.rollout_batch_size", int(_number(v))))
    else:
        _training(out, config, _LF_TRAIN)
    seen |= set(_LF_PPO_TRAIN if kind == "ppo" else _LF_TRAIN) | {"lr_scheduler_type", "warmup_ratio", "report_to",
                                                                   "bf16", "fp16", "pure_bf16"}
    if kind in ("dpo", "kto"):
        take("pref_beta", lambda v: out.set("pref_beta", "beta", float(_number(v))))
    if kind == "dpo":
        def loss(v):
            if str(v) in _LF_LOSSES:
                out.set("pref_loss", "loss_type", _LF_LOSSES[str(v)])
            else:
                out.skip("pref_loss", f"the loss {v} is not one of Atelier's DPO losses (sigmoid, ipo, orpo, simpo)")
        take("pref_loss", loss)
        if config.get("simpo_gamma") is not None:
            beta = float(_number(config.get("pref_beta", 0.1)))
            out.set("simpo_gamma", "simpo_gamma", round(float(_number(config["simpo_gamma"])) / beta, 4))
        seen.add("simpo_gamma")
    if kind == "kto":
        take("kto_chosen_weight", lambda v: out.set("kto_chosen_weight", "desirable_weight", float(_number(v))))
        take("kto_rejected_weight", lambda v: out.set("kto_rejected_weight", "undesirable_weight", float(_number(v))))
    take("seed", lambda v: out.set("seed", "seed", int(v)))
    take("num_train_epochs", lambda v: _epochs(out, "num_train_epochs", v) if "max_steps" not in config else
         out.skip("num_train_epochs", "max_steps is set, which decides the run's length"))
    take("deepspeed", lambda v: out.skip("deepspeed", f"the DeepSpeed file {v} is not read: set resources.strategy "
                                                      "(zero2 or zero3) and resources.offload instead"))
    for key, value in config.items():
        if key in seen:
            continue
        if key in _LF_SILENT:
            out.skip(key, _LF_SILENT[key])
        else:
            out.skip(key, "Atelier has no such setting")
    return out


def _lf_method(out: Imported, config: dict, kind: str, seen: set[str]) -> None:
    seen |= {"finetuning_type", "quantization_bit", "lora_rank", "lora_alpha", "lora_dropout", "lora_target",
             "use_dora", "use_rslora"}
    method = str(config.get("finetuning_type", "lora"))
    bits = config.get("quantization_bit")
    if method == "freeze":
        out.skip("finetuning_type", "freeze (training some layers only) has no counterpart: LoRA is set instead")
        method = "lora"
    elif "finetuning_type" in config:
        out.mapped.append(("finetuning_type", "method.name", method))
    if bits is not None and method == "lora":
        if kind == "finetune":
            out.set("quantization_bit", "method.name", "qlora")
            out.set("quantization_bit", "method.quantization.bits", int(bits))
            method = "qlora"
        else:
            out.skip("quantization_bit", f"the {kind} kind trains LoRA on unquantized weights")
    elif bits is not None:
        out.skip("quantization_bit", "quantization applies to LoRA only")
    out.spec.setdefault("method", {})["name"] = method
    if method in ("lora", "qlora"):
        if "lora_rank" in config:
            out.set("lora_rank", "method.lora.rank", int(config["lora_rank"]))
        if "lora_alpha" in config:
            out.set("lora_alpha", "method.lora.alpha", float(_number(config["lora_alpha"])))
        elif "lora_rank" in config:  # LLaMA-Factory's default alpha is twice the rank
            out.spec["method"]["lora"]["alpha"] = 2 * int(config["lora_rank"])
        if "lora_dropout" in config:
            out.set("lora_dropout", "method.lora.dropout", float(_number(config["lora_dropout"])))
        target = config.get("lora_target")
        if target is not None:
            modules = [m.strip() for m in str(target).split(",") if m.strip()]
            if modules == ["all"]:
                out.mapped.append(("lora_target", "method.lora.target_modules", "(every projection: the default)"))
            else:
                out.set("lora_target", "method.lora.target_modules", modules)
        for key in ("use_dora", "use_rslora"):
            if kind == "finetune" and key in config:
                out.set(key, f"method.lora.{key}", bool(config[key]))


def _lf_data(out: Imported, config: dict, kind: str, seen: set[str]) -> None:
    seen |= {"dataset", "template", "cutoff_len", "max_samples", "val_size", "eval_dataset", "train_on_prompt",
             "mask_history"}
    names = config.get("dataset")
    registry = Path(str(config.get("dataset_dir", "data"))) / "dataset_info.json"
    if names is not None:
        names = [n.strip() for n in (names if isinstance(names, list) else str(names).split(",")) if n.strip()]
        section = "prompts" if kind == "ppo" else "data"
        out.set("dataset", f"{section}.sources", [f"{registry}#{n}" for n in names])
    if config.get("eval_dataset") is not None:
        out.skip("eval_dataset", "Atelier holds out data.eval_fraction of the training data instead")
    field = "chat_template" if kind == "ppo" else "data.chat_template"
    if config.get("template") is not None:
        _template(out, "template", config["template"], field)
    if config.get("cutoff_len") is not None and kind != "ppo":
        out.set("cutoff_len", "data.max_length", int(config["cutoff_len"]))
    if config.get("max_samples") is not None:
        if kind == "finetune":
            out.set("max_samples", "data.max_records", int(config["max_samples"]))
        elif kind == "ppo":
            out.set("max_samples", "prompts.limit", int(config["max_samples"]))
        else:
            out.skip("max_samples", f"the {kind} kind reads every preference")
    val = config.get("val_size")
    if val is not None and kind != "ppo":
        val = float(_number(val))
        if val < 1:
            out.set("val_size", "data.eval_fraction", val)
        else:
            out.skip("val_size", f"{int(val)} records: Atelier holds out a share (data.eval_fraction)")
    if kind == "finetune":
        if config.get("stage") == "pt":
            out.spec["data"]["format"] = "text"
            out.spec["data"]["loss_on"] = "all"
            out.mapped.append(("stage", "data.format, data.loss_on", "text, all (continued pretraining)"))
        if config.get("train_on_prompt") is True:
            out.set("train_on_prompt", "data.loss_on", "all")
        if "mask_history" in config:
            out.skip("mask_history", "multi-turn masking is set by the data format's options")


# -- Axolotl --------------------------------------------------------------------------------------

_AX_KINDS = {"dpo": ("dpo", "sigmoid"), "ipo": ("dpo", "ipo"), "orpo": ("dpo", "orpo"), "simpo": ("dpo", "simpo"),
             "kto": ("kto", None)}
_AX_TRAIN = {"micro_batch_size": "train.batch_size", "gradient_accumulation_steps": "train.gradient_accumulation",
             "learning_rate": "train.learning_rate", "max_steps": "train.max_steps", "warmup_steps": "train.warmup_steps",
             "weight_decay": "train.weight_decay", "max_grad_norm": "train.max_grad_norm",
             "logging_steps": "train.log_every", "save_steps": "train.checkpoint_every", "eval_steps": "train.eval_every",
             "save_total_limit": "train.keep_checkpoints", "gradient_checkpointing": "train.gradient_checkpointing"}
_AX_FORMATS = {"alpaca": "alpaca", "chat_template": "auto", "sharegpt": "sharegpt", "completion": "text",
               "input_output": "prompt_completion"}
_AX_SILENT = {
    "output_dir": _OUTPUT, "dataset_prepared_path": "Atelier keeps no prepared-dataset cache",
    "model_type": "Atelier reads the architecture from the model", "tokenizer_type": "the model's own tokenizer is used",
    "strict": _NO_EFFECT, "flash_attention": "Atelier picks the attention implementation itself",
    "sdp_attention": "Atelier picks the attention implementation itself", "tf32": _NO_EFFECT, "bf16": None,
    "fp16": None, "sample_packing": "packing is a data option of its own in Atelier (not carried over)",
    "pad_to_sequence_len": _NO_EFFECT, "eval_sample_packing": _NO_EFFECT, "resume_from_checkpoint":
        "resume a run with `studio-engine resume RUN`", "wandb_project": "set train.report_to: [wandb] and WANDB_PROJECT",
    "wandb_entity": "set WANDB_ENTITY", "wandb_watch": _NO_EFFECT, "wandb_name": "the run's name is the spec's name",
    "wandb_log_model": _NO_EFFECT, "special_tokens": "Atelier adds a chat template's marker tokens itself",
    "optimizer": None, "evals_per_epoch": "set train.eval_every in steps", "saves_per_epoch":
        "set train.checkpoint_every in steps", "xformers_attention": _NO_EFFECT, "debug": _NO_EFFECT,
    "deepspeed": "the DeepSpeed file is not read: set resources.strategy (zero2 or zero3) and resources.offload",
    "fsdp": "set resources.strategy: fsdp", "fsdp_config": "set resources.strategy: fsdp",
    "early_stopping_patience": _NO_EFFECT, "local_rank": _NO_EFFECT, "logging_dir": _OUTPUT,
}


def _axolotl(config: dict) -> Imported:
    rl = config.get("rl")
    if rl is not None and str(rl) not in _AX_KINDS:
        raise ConfigError(f"Axolotl's rl: {rl} has no Atelier kind.", f"Methods Atelier imports: {', '.join(_AX_KINDS)}, "
                                                                    "and supervised fine-tuning (no rl).")
    kind, loss = _AX_KINDS[str(rl)] if rl is not None else ("finetune", None)
    out = Imported("Axolotl", {"kind": kind, "name": f"{kind}-imported"})
    if rl is not None:
        out.mapped.append(("rl", "kind", kind))
        if loss:
            out.set("rl", "loss_type", loss)
    seen = {"rl"}
    if config.get("base_model") is not None:
        out.set("base_model", "model.path", str(config["base_model"]))
    seen |= {"base_model", "trust_remote_code", "adapter", "load_in_4bit", "load_in_8bit", "lora_r", "lora_alpha",
             "lora_dropout", "lora_target_modules", "lora_target_linear", "peft_use_dora", "peft_use_rslora",
             "lora_model_dir"}
    if config.get("trust_remote_code") is not None:
        out.set("trust_remote_code", "model.trust_remote_code", bool(config["trust_remote_code"]))
    adapter = config.get("adapter")
    method = "full" if not adapter else "lora"
    if adapter == "qlora" or (adapter == "lora" and (config.get("load_in_4bit") or config.get("load_in_8bit"))):
        if kind == "finetune":
            method = "qlora"
            out.set("load_in_8bit" if config.get("load_in_8bit") else "adapter", "method.quantization.bits",
                    8 if config.get("load_in_8bit") else 4)
        else:
            out.skip("adapter", f"QLoRA: the {kind} kind trains LoRA on unquantized weights")
    out.spec.setdefault("method", {})["name"] = method
    out.mapped.append(("adapter", "method.name", method))
    for key in ("load_in_4bit", "load_in_8bit"):
        if key in config and not any(m[0] == key for m in out.mapped):
            out.mapped.append((key, "method.quantization.bits", "(with adapter)")) if config[key] and \
                method == "qlora" else out.skip(key, "off, or not used by this kind: nothing to carry over")
    if method != "full":
        for key, dotted, cast in (("lora_r", "method.lora.rank", int), ("lora_alpha", "method.lora.alpha", float),
                                  ("lora_dropout", "method.lora.dropout", float)):
            if config.get(key) is not None:
                out.set(key, dotted, cast(_number(config[key])))
        if config.get("lora_target_modules"):
            out.set("lora_target_modules", "method.lora.target_modules", list(config["lora_target_modules"]))
        elif config.get("lora_target_linear"):
            out.mapped.append(("lora_target_linear", "method.lora.target_modules", "(every projection: the default)"))
        if kind == "finetune":
            for key, name in (("peft_use_dora", "use_dora"), ("peft_use_rslora", "use_rslora")):
                if config.get(key) is not None:
                    out.set(key, f"method.lora.{name}", bool(config[key]))
    if config.get("lora_model_dir"):
        out.set("lora_model_dir", "model.adapter", str(config["lora_model_dir"])) if kind != "finetune" else \
            out.skip("lora_model_dir", "fine-tuning starts a new adapter; merge the old one first (kind: merge)")
    _ax_data(out, config, kind, seen)
    _training(out, config, _AX_TRAIN)
    seen |= set(_AX_TRAIN) | {"lr_scheduler", "warmup_ratio", "report_to"}
    if config.get("bf16") in (True, "auto"):
        out.set("bf16", "resources.precision", "bf16" if config["bf16"] is True else "auto")
    elif config.get("fp16") is True:
        out.set("fp16", "resources.precision", "fp16")
    seen |= {"bf16", "fp16"}
    if config.get("optimizer") is not None:
        name = str(config["optimizer"])
        chosen = {"adamw_torch": "adamw", "adamw_torch_fused": "adamw_fused", "paged_adamw_8bit": "paged_adamw_8bit",
                  "adamw_bnb_8bit": "paged_adamw_8bit"}.get(name)
        out.set("optimizer", "train.optimizer", chosen) if chosen else \
            out.skip("optimizer", f"{name} is not one of Atelier's optimizers (adamw, adamw_fused, paged_adamw_8bit)")
    seen.add("optimizer")
    if kind in ("dpo", "kto"):
        if config.get("rl_beta") is not None:
            out.set("rl_beta", "beta", float(_number(config["rl_beta"])))
        if kind == "dpo" and loss == "orpo" and config.get("orpo_alpha") is not None:
            out.set("orpo_alpha", "beta", float(_number(config["orpo_alpha"])))
        if kind == "dpo" and config.get("cpo_alpha") not in (None, 0, 0.0):
            out.skip("cpo_alpha", "Atelier's SimPO has no behaviour-cloning term (the SimPO paper's setting)")
        if kind == "dpo" and config.get("simpo_gamma") is not None:
            beta = float(_number(config.get("rl_beta", 2.0)))
            out.set("simpo_gamma", "simpo_gamma", round(float(_number(config["simpo_gamma"])) / beta, 4))
        if kind == "kto":
            for key, name in (("kto_desirable_weight", "desirable_weight"),
                              ("kto_undesirable_weight", "undesirable_weight")):
                if config.get(key) is not None:
                    out.set(key, name, float(_number(config[key])))
    seen |= {"rl_beta", "orpo_alpha", "cpo_alpha", "simpo_gamma", "kto_desirable_weight", "kto_undesirable_weight"}
    if config.get("seed") is not None:
        out.set("seed", "seed", int(config["seed"]))
    seen.add("seed")
    if config.get("num_epochs") is not None:
        _epochs(out, "num_epochs", config["num_epochs"]) if "max_steps" not in config else \
            out.skip("num_epochs", "max_steps is set, which decides the run's length")
    seen.add("num_epochs")
    for key in config:
        if key in seen:
            continue
        why = _AX_SILENT.get(key, "Atelier has no such setting")
        out.skip(key, why or _NO_EFFECT)
    return out


def _ax_data(out: Imported, config: dict, kind: str, seen: set[str]) -> None:
    seen |= {"datasets", "val_set_size", "sequence_len", "chat_template", "train_on_inputs", "test_datasets"}
    sources, formats = [], set()
    for i, entry in enumerate(config.get("datasets") or []):
        key = f"datasets[{i}]"
        if not isinstance(entry, dict) or not entry.get("path"):
            out.skip(key, "a dataset without a path")
            continue
        path = str(entry["path"])
        local = Path(path).expanduser().exists() or entry.get("ds_type") in ("json", "csv", "parquet", "text") \
            or Path(path).suffix.lower() in (".json", ".jsonl", ".csv", ".parquet", ".txt")
        dataset_type = entry.get("type")
        if kind == "finetune":
            name = dataset_type if isinstance(dataset_type, str) else None
            if name not in _AX_FORMATS:
                out.skip(key, f"the dataset type {dataset_type!r} has no Atelier format (alpaca, chat_template, "
                              "sharegpt, completion, input_output carry over): convert the data, or give it as a "
                              "messages or alpaca file")
                continue
            formats.add(_AX_FORMATS[name])
            for option in ("field_messages", "message_property_mappings", "roles", "message_field_role",
                           "message_field_content"):
                if option in entry:
                    out.skip(f"{key}.{option}", "field and role mappings of chat_template datasets: rename the fields "
                                                "to messages / role / content (or use a dataset_info.json entry)")
        elif dataset_type is not None:
            out.skip(f"{key}.type", f"the preference transform {dataset_type!r} is not run: Atelier reads TRL, HH-RLHF "
                                    "and LLaMA-Factory preference files (and judged answers for KTO) as they are")
        sources.append(path if local else f"hub:{path}")
    if sources:
        out.set("datasets", "data.sources", sources)
    if len(formats) == 1 and formats != {"auto"}:
        out.spec["data"]["format"] = next(iter(formats))
        out.mapped.append(("datasets[].type", "data.format", out.spec["data"]["format"]))
    elif len(formats) > 1:
        out.skip("datasets[].type", f"several formats ({', '.join(sorted(formats))}): an Atelier run reads one; "
                                    "split the run or convert the data")
    if config.get("test_datasets"):
        out.skip("test_datasets", "Atelier holds out data.eval_fraction of the training data instead")
    val = config.get("val_set_size")
    if val is not None:
        val = float(_number(val))
        out.set("val_set_size", "data.eval_fraction", val) if val < 1 else \
            out.skip("val_set_size", f"{int(val)} records: Atelier holds out a share (data.eval_fraction)")
    if config.get("sequence_len") is not None:
        out.set("sequence_len", "data.max_length", int(config["sequence_len"]))
    if config.get("chat_template") is not None:
        _template(out, "chat_template", str(config["chat_template"]), "data.chat_template")
    if kind == "finetune" and config.get("train_on_inputs") is not None:
        out.set("train_on_inputs", "data.loss_on", "all" if config["train_on_inputs"] else "responses")
