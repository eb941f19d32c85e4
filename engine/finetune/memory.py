"""How much memory a fine-tuning method needs for a given model, before loading it.

The usual accounting (as in the QLoRA paper and HF's model-memory estimator): weights at their
storage precision, plus gradients and AdamW's two moments for the trainable parameters only, plus
activations for one micro-batch. Good to a factor ~1.3 — enough to warn before a run cannot fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.finetune_specs import FinetuneSpec

METHOD_NOTES = {
    "full": "every weight trains: weights, gradients and AdamW state for all of them",
    "lora": "frozen base weights plus small low-rank adapters",
    "qlora": "4-bit base weights plus LoRA adapters; the least memory, needs a CUDA GPU",
    "adalora": "like LoRA, with ranks moved to the layers that need them",
    "prefix": "learned key/value prefixes at every layer; tiny adapter",
    "prompt": "learned input embeddings only; the smallest adapter",
    "ptuning": "learned input embeddings from a small encoder",
}


@dataclass
class MethodMemory:
    bytes: int
    trainable: int

    @property
    def gib(self) -> float:
        return self.bytes / 2**30


def lora_trainable(hidden: int, layers: int, intermediate: int, rank: int, targets: int) -> int:
    # Per targeted projection A (in × r) + B (r × out); attention ~h→h, MLP h↔i: use the mean width.
    mean_in_out = (hidden * 4 + (hidden + intermediate) * 3) / 7 * 2
    return int(layers * targets * rank * mean_in_out)


def estimate(spec: FinetuneSpec, parameters: int, hidden: int, layers: int, intermediate: int, vocab: int,
             targets: int, bytes_per_weight: float) -> dict[str, MethodMemory]:
    """Memory per method for this model and the spec's batch and length."""
    tokens = spec.train.batch_size * spec.data.max_length
    activation_bytes = 2 if bytes_per_weight == 2 else 4
    per_layer = tokens * 34 * hidden * activation_bytes / 2  # the usual per-token, per-layer estimate
    layers_kept = 1 if spec.train.gradient_checkpointing else layers
    activations = int(per_layer * layers_kept + tokens * vocab * 4 * 2)
    prompt_tokens = spec.method.prompt_learning.virtual_tokens
    trainable = {
        "full": parameters,
        "lora": lora_trainable(hidden, layers, intermediate, spec.method.lora.rank, targets),
        "qlora": lora_trainable(hidden, layers, intermediate, spec.method.lora.rank, targets),
        "adalora": lora_trainable(hidden, layers, intermediate, spec.method.adalora.initial_rank, targets),
        "prefix": prompt_tokens * layers * 2 * hidden,
        "prompt": prompt_tokens * hidden,
        "ptuning": prompt_tokens * hidden + 2 * hidden * spec.method.prompt_learning.encoder_hidden_size,
    }
    result = {}
    for method, n in trainable.items():
        weights = parameters * (0.55 if method == "qlora" else bytes_per_weight)  # NF4 + scales ≈ 0.55 B/param
        state = n * 16  # fp32 weight copy or adapter + gradient + two AdamW moments
        result[method] = MethodMemory(int(weights + state + activations), n)
    return result
