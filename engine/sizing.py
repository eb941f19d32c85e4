"""Parameter count and training-memory estimates from a model spec, without building the model.

Imported by the GUI (the wizard shows these as the user changes the size), so plain arithmetic only.
The formulas follow the Hugging Face implementations of each architecture; a test checks them
against the real model's parameter count.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.specs.pretrain import ModelSpec

# Named sizes offered by the pretraining wizard.
MODEL_PRESETS: dict[str, dict[str, int]] = {
    "tiny (~1M)": {"hidden_size": 128, "layers": 4, "heads": 4, "context_length": 256},
    "small (~10M)": {"hidden_size": 256, "layers": 8, "heads": 8, "context_length": 512},
    "base (~50M)": {"hidden_size": 512, "layers": 8, "heads": 8, "context_length": 1024},
    "medium (~200M)": {"hidden_size": 1024, "layers": 12, "heads": 16, "context_length": 1024},
    "large (~1B)": {"hidden_size": 2048, "layers": 16, "heads": 16, "context_length": 2048},
}


def intermediate_size(model: ModelSpec) -> int:
    if model.intermediate_size:
        return model.intermediate_size
    if model.architecture == "llama":
        # Llama's SwiGLU width: 2/3 of 4h, rounded up to a multiple of 32.
        return -(-int(8 * model.hidden_size / 3) // 32) * 32
    return 4 * model.hidden_size


def parameter_count(model: ModelSpec, vocab_size: int) -> int:
    h, n, v, ctx = model.hidden_size, model.layers, vocab_size, model.context_length
    ff = intermediate_size(model)
    if model.architecture == "llama":
        kv = (model.kv_heads or model.heads) * (h // model.heads)
        attention = h * h * 2 + h * kv * 2  # q, o, k, v (no biases)
        block = attention + 3 * h * ff + 2 * h  # gate/up/down + two RMSNorms
        total = v * h + n * block + h  # embeddings + blocks + final norm
        return total + (0 if model.tie_embeddings else v * h)
    if model.architecture == "gpt2":
        attention = 4 * h * h + 4 * h
        block = attention + 2 * h * ff + ff + h + 4 * h  # MLP with biases + two LayerNorms
        total = v * h + ctx * h + n * block + 2 * h
        return total + (0 if model.tie_embeddings else v * h)
    # bert: embeddings (word, position, type, LayerNorm) + blocks + MLM head (transform + bias)
    block = 4 * h * h + 4 * h + 2 * h * ff + ff + h + 4 * h
    embeddings = v * h + ctx * h + 2 * h + 2 * h
    head = h * h + h + 2 * h + v
    # An untied decoder brings its own weight and bias.
    return embeddings + n * block + head + (0 if model.tie_embeddings else v * h + v)


@dataclass
class MemoryEstimate:
    parameters: int
    weights_bytes: int
    training_bytes: int  # weights + gradients + AdamW state + activations

    @property
    def training_gib(self) -> float:
        return self.training_bytes / 2**30


def training_memory(model: ModelSpec, vocab_size: int, batch_size: int, mixed_precision: bool = False,
                    gradient_checkpointing: bool = False) -> MemoryEstimate:
    params = parameter_count(model, vocab_size)
    # fp32 master weights (4) + gradients (4) + AdamW moments (8) bytes per parameter.
    state = params * 16
    bytes_per_act = 2 if mixed_precision else 4
    tokens = batch_size * model.context_length
    # Rough activation footprint per layer and token (~34h plus attention scores), the usual estimate.
    per_layer = tokens * (34 * model.hidden_size + 5 * model.heads * model.context_length) * bytes_per_act / 2
    layers_kept = 1 if gradient_checkpointing else model.layers
    logits = tokens * vocab_size * 4 * 2
    activations = int(per_layer * layers_kept + logits)
    return MemoryEstimate(params, params * 4, state + activations)
