"""The models of a generate job: where each one is (a model folder, a checkpoint, a run, a hub id,
a base model with a PEFT adapter), its label, loading it, and the prompt layout it gets.

Loading goes through transformers (safetensors first) and PEFT. The one check of our own: an
adapter whose saved weights do not all find their place in the base model is refused, since PEFT
drops weights for layers the base lacks without a word (only missing ones are warned about).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from engine.errors import ModelError, TokenizerError
from engine.generate_specs import ModelSource
from engine.specs import CHAT_PRESETS

_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
_GENERIC_NAMES = {"model", "merged", "adapter", "output"}  # folder names that say nothing about the model


@dataclass
class ModelChoice:
    """One entry of `models`, resolved: what to load and what to call it."""

    index: int
    label: str
    base: str  # a model folder or a hub id
    adapter: str | None  # a PEFT adapter folder
    trust_remote_code: bool
    entry: str  # "models[0]", for messages
    adapter_field: str | None  # where the spec names the adapter: "models[0].adapter", or "models[0].path"

    @property
    def description(self) -> str:
        return f"{self.base} + adapter {self.adapter}" if self.adapter else self.base


def resolve_models(sources: list[ModelSource], workspace: Path | None) -> list[ModelChoice]:
    """Every model of the spec resolved and labelled (labels made unique with ` #2`, ` #3`…)."""
    choices: list[ModelChoice] = []
    seen: set[str] = {s.label for s in sources if s.label}
    for i, source in enumerate(sources):
        field = f"models[{i}]"
        kind, location = locate(source.path, workspace, f"{field}.path")
        adapter, adapter_field = None, f"{field}.adapter"
        if kind == "adapter":
            if source.adapter:
                raise ModelError(f"{location} ({field}.path) is itself a PEFT adapter, and {field}.adapter names "
                                 f"another one.",
                                 f"Put the base model in {field}.path and the adapter in {field}.adapter, or leave "
                                 f"{field}.adapter empty to load {location} on the base model it was trained on.")
            adapter, adapter_field = location, f"{field}.path"
            base = adapter_base(adapter, adapter_field)
            label = source.label or model_name(source.path, adapter)
        else:
            base = location
            label = source.label or model_name(source.path, base)
            if source.adapter:
                adapter_kind, adapter = locate(source.adapter, workspace, adapter_field)
                if adapter_kind != "adapter":
                    raise ModelError(f"{adapter} ({adapter_field}) is not a PEFT adapter: it has no "
                                     f"adapter_config.json.",
                                     f"Point {adapter_field} at an adapter folder (a fine-tuning run's output/adapter) "
                                     f"or at its run; a whole model goes in a models entry of its own.")
                label = source.label or f"{label} + {model_name(source.adapter, adapter)}"
        if not source.label:
            unique, n = label, 2
            while unique in seen:
                unique, n = f"{label} #{n}", n + 1
            label = unique
        seen.add(label)
        choices.append(ModelChoice(i, label, base, adapter, source.trust_remote_code, field,
                                   adapter_field if adapter else None))
    return choices


def resolve_model(source: ModelSource, workspace: Path | None, entry: str = "model") -> ModelChoice:
    """One model resolved as `resolve_models` resolves a spec's, for callers whose field is not
    `models[0]` (a serve request's `model`): messages, and those `load` raises later, name `entry`."""
    try:
        choice = resolve_models([source], workspace)[0]
    except ModelError as e:
        raise ModelError(e.message.replace("models[0]", entry), e.hint.replace("models[0]", entry)) from None
    choice.entry = entry
    if choice.adapter_field:
        choice.adapter_field = choice.adapter_field.replace("models[0]", entry, 1)
    return choice


def load(choice: ModelChoice, device: str, dtype: torch.dtype, log) -> tuple:
    """(model in eval mode on `device`, tokenizer); the adapter's tokenizer when it saved one (a
    fine-tuning run that added chat markers did), the base model's otherwise."""
    from transformers import AutoModelForCausalLM, GenerationConfig

    if choice.adapter and _has_tokenizer(Path(choice.adapter)):
        tokenizer = _load_tokenizer(choice.adapter, choice.adapter_field, choice.trust_remote_code)
    else:
        tokenizer = _load_tokenizer(choice.base, f"{choice.entry}.path", choice.trust_remote_code)
    try:
        model = AutoModelForCausalLM.from_pretrained(choice.base, dtype=dtype,
                                                     trust_remote_code=choice.trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelError(f"Could not load the model {choice.base} ({choice.entry}.path): {_first_line(e)}",
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


def trained_on(adapter: str) -> str | None:
    """The base model an adapter folder says it was trained on."""
    config = Path(adapter) / "adapter_config.json"
    return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") if config.exists() else None


def locate(path: str, workspace: Path | None, field: str) -> tuple[str, str]:
    """("model" or "adapter", folder) or ("hub", id)."""
    folder = Path(path).expanduser()
    if not folder.exists() and workspace is not None and (workspace / "runs" / path).is_dir():
        folder = workspace / "runs" / path  # a run id of this workspace
    if folder.is_dir():
        if (folder / "config.json").exists():
            if not any((folder / name).exists() for name in _WEIGHT_FILES):
                present = ", ".join(sorted(p.name for p in folder.iterdir())[:12])
                raise ModelError(f"{folder} ({field}) has a config.json but no weights (it holds: {present}).",
                                 "Copy the model's .safetensors files into the folder, or save it again with "
                                 "save_pretrained.")
            return "model", str(folder)
        if (folder / "adapter_config.json").exists():
            return "adapter", str(folder)
        output = folder / "output" if (folder / "output").is_dir() else folder
        for name in ("merged", "model", "policy"):  # policy: a PPO, DPO or GRPO run
            if (output / name / "config.json").exists():
                return locate(str(output / name), None, field)
        if (output / "adapter" / "adapter_config.json").exists():
            return "adapter", str(output / "adapter")
        raise ModelError(f"{folder} ({field}) holds no model: no config.json (a model or checkpoint folder), no "
                         f"adapter_config.json (a PEFT adapter), and no output/model, output/merged, output/policy or "
                         f"output/adapter (a run).",
                         "Pick a completed pretraining, fine-tuning or RLHF run, a model folder, or an adapter "
                         "folder.")
    if folder.exists():
        raise ModelError(f"{folder} ({field}) is a file; a model is a folder.", "Point it at the folder.")
    if "/" in path and not path.startswith((".", "/", "~")):
        return "hub", path  # from_pretrained downloads it (or finds it in the cache offline)
    raise ModelError(f"The model {path} ({field}) does not exist.",
                     "Give a run id of this workspace, a model, checkpoint or adapter folder, or a hub id such as "
                     "owner/name.")


def adapter_base(adapter: str, field: str) -> str:
    """The base model an adapter was trained on, as a folder on this machine or a hub id; an error
    naming `field` when the adapter does not say or the base is not here."""
    base = trained_on(adapter)
    if not base:
        raise ModelError(f"The adapter {adapter} ({field}) does not say which model it was trained on "
                         f"(base_model_name_or_path is empty in its adapter_config.json).",
                         f"Give the base model in {field.rsplit('.', 1)[0]}.path and the adapter in "
                         f"{field.rsplit('.', 1)[0]}.adapter.")
    folder = Path(base).expanduser()
    if folder.is_dir() or ("/" in base and not base.startswith((".", "/", "~"))):
        return str(folder) if folder.is_dir() else base
    entry = field.rsplit(".", 1)[0]
    raise ModelError(f"The adapter {adapter} ({field}) was trained on {base}, which is not on this machine.",
                     f"Give the base model in {entry}.path and the adapter in {entry}.adapter.")


def model_name(given: str, location: str) -> str:
    """A readable name: the run id (`run@checkpoint-200` for a checkpoint), else the folder's name."""
    if not Path(location).exists():
        return given  # a hub id
    parts = Path(location).resolve().parts
    if "runs" in parts[:-1]:
        at = len(parts) - 1 - parts[::-1].index("runs")
        if at + 1 < len(parts):
            run = parts[at + 1]
            checkpoint = next((p for p in parts[at + 2:] if p.startswith("checkpoint-")), None)
            return f"{run}@{checkpoint}" if checkpoint else run
    folder = Path(location).resolve()
    while folder.name in _GENERIC_NAMES and folder.parent != folder:
        folder = folder.parent
    return folder.name or given


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).exists() for name in _TOKENIZER_FILES)


def _load_tokenizer(source: str, field: str, trust_remote_code: bool):
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - a missing or damaged tokenizer raises many types
        raise ModelError(f"Could not load the tokenizer of {source} ({field}): {_first_line(e)}",
                         "The model folder needs its tokenizer files (tokenizer.json or the model's own).") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token  # left padding of batches; never generated into an answer
    return tokenizer


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


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0].rstrip(".")
