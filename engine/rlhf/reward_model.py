"""The model of a reward job: the starting model (a run, a folder, a hub id, optionally with the SFT
run's LoRA adapter, found by engine/models) with a one-score sequence-classification head, the LoRA
configuration that trains it, and the single model folder it is saved as.

Everything goes through transformers (`AutoModelForSequenceClassification`, which puts the head on
any decoder it supports) and PEFT.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from engine.devices import Placement, check_fits
from engine.errors import ModelError
from engine.finetune.memory import lora_trainable
from engine.finetune.model import linear_module_names, meta_model, targeted_shapes
from engine.generate.models import load
from engine.models import ModelChoice
from engine.specs.reward import RewardSpec
from engine.specs.rlhf import RLMethod

SCORE_HEADS = ["score", "classifier"]  # what AutoModelForSequenceClassification calls the head, by architecture


def load_score_model(choice: ModelChoice, dtype: torch.dtype, scratch: Path, log):
    """The model with a freshly initialised one-score head (a *ForSequenceClassification, num_labels=1).

    With an adapter, the causal LM is loaded, the adapter attached (and checked to fit) and merged,
    and the merged weights written to a scratch folder that the classification model is loaded
    from. Going through a folder is the simplest correct way: `from_pretrained` is what knows, for
    every architecture, how a causal LM's weights map onto its sequence-classification class (the
    body's prefix, tied embeddings, the LM head left out, the score head created); copying state
    dicts by hand would redo that per architecture. The folder is deleted once loaded.
    """
    if choice.adapter is None:
        return _classifier(choice.base, choice, dtype)
    causal, _ = load(choice, "cpu", dtype, log)
    merged = causal.merge_and_unload()
    folder = Path(tempfile.mkdtemp(prefix=".merged-base-", dir=scratch))
    try:
        merged.save_pretrained(folder, safe_serialization=True)
        del causal, merged
        return _classifier(str(folder), choice, dtype)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def check_memory(spec: RewardSpec, choice: ModelChoice, placement: Placement) -> None:
    """Fail before loading when the model clearly cannot train here: weights, plus gradients and AdamW
    state for what trains, plus the activations of one micro-batch (chosen and rejected), as
    engine/finetune/memory.py counts them (no vocabulary-sized logits: the head gives one score)."""
    structure = meta_model(choice.base, choice.trust_remote_code)
    config = structure.config
    parameters = sum(p.numel() for p in structure.parameters())
    hidden, layers = config.hidden_size, config.num_hidden_layers
    bytes_per_weight = 4 if placement.precision == "fp32" else 2
    if spec.method.name == "full":
        trainable = parameters
    else:
        trainable = lora_trainable(targeted_shapes(structure, spec.method.lora.target_modules), spec.method.lora.rank,
                                   dora=spec.method.lora.use_dora)
    tokens = 2 * spec.train.batch_size * spec.data.max_length
    layers_kept = 1 if spec.train.gradient_checkpointing else layers
    activations = tokens * 34 * hidden * bytes_per_weight / 2 * layers_kept
    needed = parameters * bytes_per_weight + trainable * 16 + activations
    what = f"{spec.method.name} reward-model training of a {parameters / 1e6:,.1f}M-parameter model"
    check_fits(int(needed), placement, what,
               "Use method.name: lora instead of full, lower train.batch_size (raise train.gradient_accumulation to "
               "keep the effective batch) or data.max_length, or turn on train.gradient_checkpointing.")


def _classifier(source: str, choice: ModelChoice, dtype: torch.dtype):
    from transformers import AutoModelForSequenceClassification

    # TRL's scoped switch: "score.weight missing" and "lm_head unexpected" are the expected result of
    # loading a causal LM as a classifier, not problems worth a warning.
    from trl.trainer.reward_trainer import suppress_seqcls_warning

    try:
        with suppress_seqcls_warning():
            return AutoModelForSequenceClassification.from_pretrained(
                source, num_labels=1, dtype=dtype, trust_remote_code=choice.trust_remote_code)
    except (OSError, ValueError, KeyError) as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelError(f"Could not load {choice.base} (model.path) with a score head: {text.rstrip('.')}.",
                         "The reward model needs an architecture that transformers' AutoModelForSequenceClassification "
                         "knows (Llama, Qwen, Mistral, GPT-2 and most decoders); check the folder or hub id, or set "
                         "model.trust_remote_code for a model that ships its own code.") from None


def lora_config(method: RLMethod, model, new_token_ids: list[int]):
    """LoRA on the linear layers (all, or `method.lora.target_modules`) for sequence classification;
    the score head trains in full (`modules_to_save`), since it starts random."""
    import peft

    available = linear_module_names(model)
    targets = method.lora.target_modules or available
    unknown = [t for t in targets if t not in available]
    if unknown:
        raise ModelError(f"method.lora.target_modules names {', '.join(unknown)}, which this model does not have.",
                         f"Its linear layers are: {', '.join(available)}.")
    heads = [name for name in SCORE_HEADS if hasattr(model, name)]
    config = peft.LoraConfig(task_type="SEQ_CLS", r=method.lora.rank, lora_alpha=method.lora.alpha,
                             lora_dropout=method.lora.dropout, target_modules=targets, use_dora=method.lora.use_dora,
                             use_rslora=method.lora.use_rslora, modules_to_save=heads)
    if new_token_ids:
        config.trainable_token_indices = new_token_ids  # chat markers added for the template start untrained
    return config


def standalone(model):
    """The model to save: a LoRA-wrapped model merged into plain weights (so that the folder loads with
    AutoModelForSequenceClassification alone), a plain model as it is."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
