"""How the kinds that learn from token records of varying length batch them and compute their loss.

- Packed (padding-free): a batch's records end to end in one row, with `position_ids` restarting at
  every record. transformers reads the restarts as record boundaries and builds a block-diagonal
  causal mask (SDPA/eager; flash-attention varlen on CUDA), so no record attends to another and
  every record keeps its own positions: no slot of the batch is padding.
- Padded: records right-padded to the longest of the batch, the plain Hugging Face batch.

Either way the logits are computed only at the positions whose next token is trained (the
`logits_to_keep` mask transformers' causal LMs take): the prompt's, the padding's and the boundaries'
logits, a vocabulary-sized row each, are never made. Even the trained rows are not held at once where
PyTorch has its chunked linear cross-entropy (`F.linear_cross_entropy`, 2.13 and later): the model
stops before its output layer, and the op applies the layer and the loss a chunk of positions at a
time, keeping only the gradients, so peak memory no longer grows with trained tokens × vocabulary.
With Liger kernels installed on CUDA (the `gpu` extra), their fused linear cross-entropy does the same
in one kernel.

`train.packing: auto` packs where packing is exact for the model's architecture. Exactness is checked,
not assumed from a list of model types: a one-layer copy of the architecture (random weights, tiny
widths) runs two records packed and apart, and their logits must agree. Where attention reads the packed
row through a dense mask (SDPA, eager: every position against every other of the row), `auto` also
packs batch by batch only where one row computes less than padded rows (`one_row_pays`); records of
one length, for instance, compute several times more packed there. flash-attention's varlen kernel
attends within each record, so with it `auto` packs every batch.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from transformers import DataCollatorWithFlattening, Trainer

from engine.errors import ModelError
from engine.finetune.memory import CHUNK_LOGITS

log = logging.getLogger(__name__)

IGNORE = -100  # the label of a position that is not trained (transformers' and PyTorch's ignore_index)
PROMPT_LEARNING = ("prefix", "prompt", "ptuning")
EXACT = 1e-4  # relative agreement of packed and separate logits that counts as exact


@dataclass(frozen=True)
class BatchPlan:
    """The chosen path: packed or padded rows, how the loss is computed, whether the model is compiled."""

    packed: bool
    # "chunked" (the output layer and the loss a chunk of trained positions at a time), "trained positions"
    # (logits only where trained, all at once), "liger" (fused linear cross-entropy) or "model" (the model's
    # own loss: PEFT's prompt learning widens the rows with virtual tokens the mask cannot know of)
    loss: str
    compiled: bool
    batchwise: bool = False  # packed only the batches where one row computes less (`one_row_pays`)

    def describe(self) -> str:
        rows = ("packed where one row computes less than padded rows, batch by batch" if self.packed and self.batchwise
                else "packed, padding-free" if self.packed else "padded")
        loss = {"liger": "fused linear cross-entropy (Liger)", "chunked": "chunked cross-entropy at trained positions",
                "trained positions": "logits at trained positions only", "model": "the model's own loss"}[self.loss]
        return f"{rows}; {loss}; {'compiled' if self.compiled else 'not compiled'}"


def trained_positions(labels: torch.Tensor) -> torch.Tensor:
    """The `logits_to_keep` mask of a batch: True where the next position's label is trained."""
    keep = torch.zeros_like(labels, dtype=torch.bool)
    keep[:, :-1] = labels[:, 1:] != IGNORE
    return keep


class PaddedCollator:
    """Right-pads input_ids with the pad token and labels with -100 (no loss on padding)."""

    def __init__(self, pad_token_id: int, keep_trained_logits: bool = True):
        self.pad = pad_token_id
        self.keep_trained_logits = keep_trained_logits

    def __call__(self, features: list[dict]) -> dict:
        width = max(len(f["input_ids"]) for f in features)
        ids = torch.full((len(features), width), self.pad, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(features), width), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            ids[i, :n] = torch.tensor(f["input_ids"])
            labels[i, :n] = torch.tensor(f["labels"])
            mask[i, :n] = 1
        batch = {"input_ids": ids, "labels": labels, "attention_mask": mask}
        if self.keep_trained_logits:
            batch["logits_to_keep"] = trained_positions(labels)
        return batch


def one_row_pays(lengths: list[int], hidden_size: int) -> bool:
    """Whether records of `lengths` packed in one row compute no more than the same records in padded rows, where
    attention reads a packed row through a dense mask (SDPA and eager attention: the block-diagonal mask is a
    row × row matrix). Packed attention then grows with the square of all the records' tokens together,
    padded attention with the square of the longest record, row by row; the linear layers grow with the
    tokens computed, real or padding. Per layer a token's linear layers cost about 24·h² multiply-adds and a
    pair of positions in attention about 4·h, so in units of one pair a token costs 6·h."""
    tokens, width, per_token = sum(lengths), max(lengths), 6 * hidden_size
    return per_token * tokens + tokens ** 2 <= len(lengths) * (per_token * width + width ** 2)


def varlen_attention(config) -> bool:
    """Whether the model attends within each packed record (flash-attention's varlen kernel), not through a
    dense mask over the whole row."""
    return "flash" in str(getattr(config, "_attn_implementation", None) or "")


def hidden_size(config) -> int:
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return int(getattr(text, "hidden_size", None) or getattr(text, "n_embd", None) or getattr(text, "d_model", 0) or 0)


class PackedCollator:
    """A batch's records in one row with per-record position ids (transformers' DataCollatorWithFlattening:
    the first label of each record becomes -100, so no record is trained to predict the next one's start).
    With `padded`, a batch whose one row would compute more than padded rows (`one_row_pays`, for a model of
    width `hidden_size`) is padded by it instead; both layouts train the same."""

    def __init__(self, keep_trained_logits: bool = True, flash_attention: bool = False,
                 padded: PaddedCollator | None = None, hidden_size: int = 0):
        self.flatten = DataCollatorWithFlattening(return_flash_attn_kwargs=flash_attention)
        self.keep_trained_logits = keep_trained_logits
        self.padded, self.hidden_size = padded, hidden_size

    def __call__(self, features: list[dict]) -> dict:
        if self.padded is not None and not one_row_pays([len(f["input_ids"]) for f in features], self.hidden_size):
            return self.padded(features)
        batch = self.flatten([{"input_ids": f["input_ids"], "labels": f["labels"]} for f in features])
        # A cache would make transformers treat the row as one sequence (it reads packing from positions
        # only without one), and training never reads a cache.
        batch["use_cache"] = False
        if self.keep_trained_logits:
            batch["logits_to_keep"] = trained_positions(batch["labels"])
        return batch


def collator(plan: BatchPlan, pad_token_id: int, device: str, config=None):
    """The collator of `plan`: packed rows (flash-attention's sequence boundaries on CUDA) or padded ones,
    or batch by batch the cheaper of the two for a model of `config`; with the trained-positions mask when
    the plan's loss reads it."""
    keep = plan.loss in ("trained positions", "chunked")
    padded = PaddedCollator(pad_token_id, keep_trained_logits=keep)
    if not plan.packed:
        return padded
    return PackedCollator(keep_trained_logits=keep, flash_attention=device.startswith("cuda"),
                          padded=padded if plan.batchwise else None,
                          hidden_size=hidden_size(config) if config is not None else 0)


def trained_positions_loss(outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
    """Cross-entropy of logits made at the trained positions only (`logits_to_keep`): the sum over the
    batch's trained tokens divided by `num_items_in_batch` (every micro-batch of the step, as the Trainer
    counts it) or by this batch's trained tokens — what transformers' own causal-LM loss gives."""
    targets = labels[:, 1:][labels[:, 1:] != IGNORE]
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
    loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.to(logits.device),
                                             reduction="sum")
    divisor = num_items_in_batch if num_items_in_batch is not None else max(targets.numel(), 1)
    if torch.is_tensor(divisor):
        divisor = divisor.to(loss.device)
    return loss / divisor


class TokenCounts:
    """Tokens the training batches hold since the last read: real ones, trained ones (a loss on them) and
    slots (rows × width, padding included), for trained tokens/s and padding efficiency. A batch without
    labels or a completion mask (a reward model's pairs) trains on every real token: each one shapes the score."""

    def __init__(self, packing: Packing | None = None):
        self.real = self.trained = self.slots = 0
        # Padded batches that the model runs packed where `packing` packs them (PackedLogProbs): no slot is padding.
        self.packing = packing

    def add(self, inputs: dict) -> None:
        # Counts stay tensors on the batch's device until `take`: reading one (int()) would make the step
        # wait for the device, every micro-batch (`packing` decided batch by batch reads the lengths).
        if "prompt_ids" in inputs and "completion_ids" in inputs:  # TRL's GRPO batches: one row is prompt + answer
            inputs = {"input_ids": torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], dim=1),
                      "attention_mask": torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], dim=1),
                      "completion_mask": torch.cat([torch.zeros_like(inputs["prompt_mask"]),
                                                    inputs["completion_mask"]], dim=1)}
        ids, labels = inputs["input_ids"], inputs.get("labels")
        mask = inputs.get("attention_mask")
        real = mask.sum() if mask is not None else ids.numel()
        run_packed = (self.packing is not None and mask is not None
                      and self.packing.packs_padded(mask))
        self.slots += real if run_packed else ids.numel()
        self.real += real
        if labels is not None:
            self.trained += (labels[:, 1:] != IGNORE).sum()
        elif "completion_mask" in inputs:  # TRL's preference batches: the answers are trained
            self.trained += inputs["completion_mask"][:, 1:].sum()
        else:
            self.trained += real

    def take(self) -> tuple[int, int, int]:
        counts = (int(self.real), int(self.trained), int(self.slots))
        self.real = self.trained = self.slots = 0
        return counts


# CHUNK_LOGITS, the logits of one chunk in elements (128 MB in fp32: 1,024 positions of a 32k vocabulary,
# 256 of a 128k one), lives with the memory estimate that counts it. PyTorch's own sizing ("aspect_ratio")
# makes chunks as small as the hidden states, 32 rows for a 256-wide model of 32k tokens, and measured 5x
# slower than no chunks on a CPU; chunks of this size cost no time and still cap the loss's memory.


def chunked_cross_entropy_available() -> bool:
    return hasattr(torch.nn.functional, "linear_cross_entropy") and hasattr(torch.nn, "LinearCrossEntropyOptions")


class ChunkedCrossEntropy:
    """The loss of the "chunked" plan: while the Trainer computes a batch's loss, the model's output layer
    (`head`) hands on its input, the hidden states of the trained positions (the `logits_to_keep` mask);
    PyTorch's linear cross-entropy then applies the layer and the loss a chunk of positions at a time.
    The sum over trained tokens is divided as `trained_positions_loss` divides it."""

    def __init__(self, head: torch.nn.Module):
        self.head = head

    @contextmanager
    def hidden_states_out(self):
        """The output layer passes its input through (an instance attribute shadows the class's forward)."""
        self.head.forward = _pass_through
        try:
            yield
        finally:
            del self.head.forward

    def __call__(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        targets = labels[:, 1:][labels[:, 1:] != IGNORE]
        hidden = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        hidden = hidden.reshape(-1, hidden.shape[-1])
        divisor = num_items_in_batch if num_items_in_batch is not None else max(targets.numel(), 1)
        if torch.is_tensor(divisor):
            divisor = divisor.to(hidden.device)
        if targets.numel() == 0:  # nothing trained in this batch: a zero that still reaches the graph
            return hidden.sum() * 0.0
        weight, bias = output_layer_weights(self.head)  # read at every step: an adapter's rows change
        rows = max(1, CHUNK_LOGITS // weight.shape[0])
        options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=rows, chunking_method=None)
        loss = torch.nn.functional.linear_cross_entropy(
            hidden, weight, targets.to(hidden.device), linear_bias=bias, reduction="sum", options=options)
        return loss.float() / divisor


def output_layer_weights(head: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """The weight and bias of an output layer that is a plain linear map, or None: a linear layer, or PEFT's
    wrapper that trains the rows of added tokens (its `weight` is the merged one, and it applies no bias)."""
    if type(head) is torch.nn.Linear:
        return head.weight, head.bias
    if type(head).__name__ == "TrainableTokensWrapper":
        from peft.utils.other import TrainableTokensWrapper

        if isinstance(head, TrainableTokensWrapper) and type(head.original_module) is torch.nn.Linear:
            return head.weight, None
    return None


def _pass_through(hidden: torch.Tensor) -> torch.Tensor:
    return hidden


def trainer_loss(plan: BatchPlan, model):
    """What the Trainer's `compute_loss_func` gets for `plan` (None: the model's own loss, or Liger's)."""
    if plan.loss == "chunked":
        return ChunkedCrossEntropy(model.get_output_embeddings())
    return trained_positions_loss if plan.loss == "trained positions" else None


class CountingTokens:
    """A mixin for a transformers Trainer (TRL's included): counts the tokens of every training batch
    (TokenCounts) before its usual loss — the Trainer itself reports only samples, and the collator may
    run in worker processes."""

    def __init__(self, *args, counts: TokenCounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.counts = counts

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if self.model.training:
            self.counts.add(inputs)
        return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                    num_items_in_batch=num_items_in_batch)


class BatchTrainer(CountingTokens, Trainer):
    """transformers' Trainer counting its batches' tokens; with a ChunkedCrossEntropy as its loss, the
    model's forward stops before the output layer."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        chunked = self.compute_loss_func if isinstance(self.compute_loss_func, ChunkedCrossEntropy) else None
        with chunked.hidden_states_out() if chunked is not None else nullcontext():
            return super().compute_loss(model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)


def liger_available(device: str) -> bool:
    """Liger's Triton kernels run on CUDA only; the package is optional (`pip install liger-kernel`)."""
    if not device.startswith("cuda"):
        return False
    try:
        import liger_kernel  # noqa: F401
    except ImportError:
        return False
    return True


def plan_batches(ctx, model, device: str, method: str = "full") -> BatchPlan:
    """The path of this run from `train.packing` and `train.compile`: packed where asked or, for auto,
    where the architecture packs exactly (a ModelError for `on` where it does not, naming why)."""
    plan, problem = choose_plan(ctx.spec.train, model.config, device, method)
    if plan.loss == "chunked":
        head = model.get_output_embeddings()
        sharded = ctx.spec.resources.strategy in ("fsdp", "deepspeed-zero3")
        if output_layer_weights(head) is None or sharded:
            why = ("its weight is sharded across processes" if sharded else
                   f"it is a {type(head).__name__}, not a plain linear layer (adapted or quantized)")
            ctx.events.log("info", f"Logits at trained positions, not chunked: the model's output layer cannot be "
                                   f"applied apart from it, as {why}.")
            plan = BatchPlan(packed=plan.packed, loss="trained positions", compiled=plan.compiled,
                             batchwise=plan.batchwise)
    report_packing_problem(ctx, problem)
    return plan


@dataclass(frozen=True)
class Packing:
    """Whether a run that batches pairs (reward, DPO) packs them: never, every batch, or (`batchwise`) the
    batches where one row computes less than padded rows for a model of width `hidden_size`."""

    packed: bool
    batchwise: bool = False
    hidden_size: int = 0

    def packs(self, lengths: list[int]) -> bool:
        return self.packed and (not self.batchwise or one_row_pays(lengths, self.hidden_size))

    def packs_padded(self, attention_mask) -> bool:
        """`packs` for a padded batch: its lengths are read from `attention_mask` (a wait on the device) only where
        the decision is batch by batch."""
        return self.packed and (not self.batchwise or one_row_pays(attention_mask.sum(dim=1).tolist(),
                                                                    self.hidden_size))

    def describe(self) -> str:
        return ("packed where one row computes less than padded rows, batch by batch" if self.packed and self.batchwise
                else "packed, padding-free" if self.packed else "padded")


def decide_packing(ctx, config, method: str = "full") -> Packing:
    """How this run packs (`packing_for`); a ModelError for `train.packing: on` where the architecture cannot
    pack, naming why."""
    packing, problem = packing_for(ctx.spec.train, config, method)
    report_packing_problem(ctx, problem)
    return packing


def packing_for(train, config, method: str = "full") -> tuple[Packing, str | None]:
    """How `train:` settings pack on a model of `config`, and why not (None where they pack, or where packing is
    off): never for `train.packing: off`; for auto and on, where the architecture keeps packed records exactly
    apart — for auto batch by batch where attention reads a packed row through a dense mask."""
    if train.packing == "off":
        return Packing(False), None
    problem = packing_problem(config, method)
    return Packing(problem is None, batchwise=train.packing == "auto" and not varlen_attention(config),
                   hidden_size=hidden_size(config)), problem


def report_packing_problem(ctx, problem: str | None) -> None:
    if problem is None:
        return
    if ctx.spec.train.packing == "on":
        raise ModelError(f"train.packing is on, but packing is not exact for this model: {problem}",
                         "Set train.packing to auto (packs where exact, pads otherwise) or off.")
    if ctx.spec.train.packing == "auto":
        ctx.events.log("info", f"Padded batches: {problem}")


def choose_plan(train, config, device: str, method: str) -> tuple[BatchPlan, str | None]:
    """The plan for `train:` settings on a model of `config` (the meta-device structure is enough), and
    why it cannot pack (None where it can, or where packing is off)."""
    problem = packing_problem(config, method) if train.packing != "off" else None
    loss = ("model" if method in PROMPT_LEARNING else "liger" if liger_available(device)
            else "chunked" if chunked_problem(config) is None else "trained positions")
    packed = train.packing != "off" and problem is None
    return BatchPlan(packed=packed, loss=loss, compiled=train.compile,
                     batchwise=packed and train.packing == "auto" and not varlen_attention(config)), problem


def plan_summary(train, config, device: str, method: str) -> dict:
    """The plan as the fine-tuning preview reports it: {"packed", "loss", "compiled", "text", "why_padded"}."""
    plan, problem = choose_plan(train, config, device, method)
    return {"packed": plan.packed, "loss": plan.loss, "compiled": plan.compiled, "text": plan.describe(),
            "why_padded": problem if train.packing != "off" else "train.packing is off."}


def packing_problem(config, method: str) -> str | None:
    """Why records packed in one row would not train exactly as they do apart, or None when they would."""
    if method in PROMPT_LEARNING:
        return (f"method {method} puts its virtual tokens at the start of each row, so only the first record of a "
                f"packed row would see them.")
    try:
        mismatch = packed_mismatch(config)
    except Exception as error:  # an architecture whose copy cannot be built or run this way cannot be vouched for
        log.info("packing check of %s failed", getattr(config, "model_type", "?"), exc_info=True)
        return (f"the {getattr(config, 'model_type', 'unknown')} architecture could not be checked for packed "
                f"sequences ({type(error).__name__}: {str(error).split('. ')[0]}).")
    if mismatch > EXACT:
        return (f"the {config.model_type} architecture does not keep packed records apart (two records packed in one "
                f"row give logits {mismatch:.1e} away from the same records alone).")
    return None


TINY_WIDTHS = {"hidden_size": 32, "n_embd": 32, "d_model": 32, "intermediate_size": 64, "n_inner": 64,
               "ffn_dim": 64, "num_attention_heads": 2, "n_head": 2, "num_key_value_heads": 2, "head_dim": 16,
               "vocab_size": 64}


def tiny_copy(config):
    """A one-layer copy of `config`'s architecture with tiny widths (random weights, fp32, eval mode): the
    code path of the architecture, checked at no cost for a large model."""
    from transformers import AutoModelForCausalLM

    values = config.to_dict()
    values.pop("quantization_config", None)  # the copy is built whole, in fp32, on the CPU
    values.update({name: value for name, value in TINY_WIDTHS.items() if name in values})
    for name in ("bos_token_id", "eos_token_id", "pad_token_id", "decoder_start_token_id"):
        if values.get(name) is not None:
            values[name] = 0
    for name in ("num_hidden_layers", "n_layer", "num_layers"):
        if name in values:
            values[name] = 1
    if values.get("layer_types"):
        values["layer_types"] = values["layer_types"][:1]
    tiny = type(config).from_dict(values)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(tiny, dtype=torch.float32).eval()


def chunked_problem(config) -> str | None:
    """Why the chunked loss cannot stand in for the model's logits, or None when it can: PyTorch lacks the
    op, or the architecture changes the output layer's result before its loss (Gemma's soft-capping,
    Cohere's and Granite's logit scales): checked on a tiny copy, whose logits must equal its output
    layer applied to what that layer receives."""
    if not chunked_cross_entropy_available():
        return f"PyTorch {torch.__version__} has no chunked linear cross-entropy (2.13 and later have)."
    try:
        model = tiny_copy(config)
        head = model.get_output_embeddings()
        if type(head) is not torch.nn.Linear:
            return f"the output layer of {config.model_type} is a {type(head).__name__}, not a linear layer."
        with torch.no_grad():  # logits far from 0, where a soft cap or a scale cannot pass for the identity
            head.weight.mul_(1000.0)
        ids = torch.arange(1, 9)[None] % 64
        seen = []
        hook = head.register_forward_hook(lambda module, args, out: seen.append(args[0]))
        with torch.no_grad():
            logits = model(input_ids=ids, use_cache=False).logits
        hook.remove()
        applied = torch.nn.functional.linear(seen[0], head.weight, head.bias)
        mismatch = ((logits - applied).abs().max() / logits.abs().max().clamp_min(1e-12)).item()
    except Exception as error:  # an architecture that cannot be checked keeps the plain loss
        log.info("output layer check of %s failed", getattr(config, "model_type", "?"), exc_info=True)
        return f"the {getattr(config, 'model_type', 'unknown')} architecture could not be checked ({type(error).__name__})."
    if mismatch > EXACT:
        return f"the {config.model_type} architecture changes its output layer's logits before the loss."
    return None


def packed_mismatch(config) -> float:
    """The largest relative difference between the logits of two records packed in one row and the same
    records run apart, on a tiny copy of `config`'s architecture."""
    model = tiny_copy(config)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        records = [torch.randint(0, 64, (n,)) for n in (7, 5)]
    collator = PackedCollator()
    batch = collator([{"input_ids": r.tolist(), "labels": r.tolist()} for r in records])
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[0]
        apart = torch.cat([model(input_ids=r[None], use_cache=False).logits[0] for r in records])
        kept = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False,
                     logits_to_keep=batch["logits_to_keep"]).logits
    mismatch = ((packed - apart).abs().max() / apart.abs().max().clamp_min(1e-12)).item()
    keep_mismatch = ((kept - packed[batch["logits_to_keep"][0]]).abs().max()
                     / apart.abs().max().clamp_min(1e-12)).item()
    return max(mismatch, keep_mismatch)
