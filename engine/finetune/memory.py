"""How much memory a fine-tuning method needs for a given model, before loading it.

The usual accounting (as in the QLoRA paper and HF's model-memory estimator): weights at their
storage precision, plus gradients and AdamW's two moments for the trainable parameters only, plus
activations for one micro-batch, plus the loss's logits. The activation coefficients are measured, not
taken from the transformer-paper formula (34 × hidden bytes per token and layer in half precision,
which undercounted LoRA by half on a CPU): bench/memory_estimate.py fits them on three llama shapes and
checks every method against measured peaks (within ±25% on a CPU; bench/RESULTS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.specs.finetune import FinetuneSpec

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


def lora_trainable(shapes: list[tuple[int, int]], rank: int, dora: bool = False, adalora: bool = False) -> int:
    """The parameters LoRA trains on layers of these (in, out) sizes, as PEFT builds them: A (r × in)
    and B (out × r) each; DoRA adds a magnitude per output, AdaLoRA a singular value per rank."""
    return sum(rank * (n_in + n_out) + (n_out if dora else 0) + (rank if adalora else 0) for n_in, n_out in shapes)


# Bytes per token, per layer, per unit of hidden size, of what training keeps alive through a step in
# fp32 (halved in bf16/fp16), by what trains. LoRA-style adapters keep the most: each adapted layer's
# dropout makes a copy of its input, and their temporaries leave the allocator's arenas fuller; prefix
# and prompt learning keep the least (a frozen model saves only what its input gradients need).
ACTIVATION_BYTES = {"full": 101, "adapter": 246, "prompt learning": 72}
LOGIT_COPIES = 3  # fp32 logits, their log-softmax and its gradient live together in a plain loss
CHUNK_LOGITS = 1 << 25  # the chunked loss's logits at a time, in elements (engine/training/batches.py)
CPU_RUNTIME = 100 * 2**20  # what a CPU run adds beyond tensors: allocator arenas, kernels loaded on first use


def estimate(spec: FinetuneSpec, parameters: int, hidden: int, layers: int, vocab: int,
             targeted: list[tuple[int, int]], bytes_per_weight: float, cpu: bool = False) -> dict[str, MethodMemory]:
    """Memory per method for this model and the spec's batch and length; `targeted` holds the (in,
    out) sizes of the layers the adapters go on; `cpu` adds what a CPU process needs beyond tensors."""
    tokens = spec.train.batch_size * spec.data.max_length
    scale = (2 if bytes_per_weight == 2 else 4) / 4
    layers_kept = 1 if spec.train.gradient_checkpointing else layers
    # Checkpointing keeps each layer's input and recomputes the rest one layer at a time.
    kept = tokens * hidden * 4 * scale * layers if spec.train.gradient_checkpointing else 0
    # Prompt learning keeps the model's own loss over every position; the other methods' loss applies the
    # output layer a chunk of trained positions at a time (or Liger's kernel does, on CUDA).
    whole_logits = tokens * vocab * 4 * LOGIT_COPIES
    chunked_logits = min(tokens * vocab, CHUNK_LOGITS) * 4
    prompt_tokens = spec.method.prompt_learning.virtual_tokens
    trainable = {
        "full": parameters,
        "lora": lora_trainable(targeted, spec.method.lora.rank, dora=spec.method.lora.use_dora),
        "qlora": lora_trainable(targeted, spec.method.lora.rank, dora=spec.method.lora.use_dora),
        "adalora": lora_trainable(targeted, spec.method.adalora.initial_rank, adalora=True),
        "prefix": prompt_tokens * layers * 2 * hidden,
        "prompt": prompt_tokens * hidden,
        "ptuning": prompt_tokens * hidden + 2 * hidden * spec.method.prompt_learning.encoder_hidden_size,
    }
    result = {}
    for method, n in trainable.items():
        family = ("full" if method == "full" else "prompt learning" if method in ("prefix", "prompt", "ptuning")
                  else "adapter")
        activations = tokens * layers_kept * hidden * ACTIVATION_BYTES[family] * scale + kept
        activations += whole_logits if family == "prompt learning" else chunked_logits
        weights = parameters * (0.55 if method == "qlora" else bytes_per_weight)  # NF4 + scales ≈ 0.55 B/param
        # Gradient and two AdamW moments in fp32 per trainable parameter, and an fp32 master copy when the
        # weights are kept in half precision; an fp32 full fine-tune trains its weights in place.
        state = n * (12 if method == "full" and bytes_per_weight == 4 else 16)
        result[method] = MethodMemory(int(weights + state + activations + (CPU_RUNTIME if cpu else 0)), n)
    return result
