"""Tiny models built on the spot, for the tests that drive the engine on a real model: a byte-level BPE
tokenizer trained on a fixture's own texts, a randomly initialised llama of a few tens of thousands of
parameters, and a LoRA adapter that changes what it says. Built the same way in every test module, so
that a fixture names only what makes its model different (texts, vocabulary, positions, widths).

torch, transformers and PEFT are imported when a builder is called, not when this module is imported."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, PreTrainedTokenizerFast

CHATML_MARKERS = ["<|im_start|>", "<|im_end|>"]


def tiny_byte_bpe(texts: list[str], vocab_size: int, max_length: int = 256,
                  chat_template: bool = True) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts` (every pair counts: minimum frequency 1) whose
    special tokens include chatml's markers, with `max_length` as its model_max_length; chatml's chat
    template is set unless `chat_template` is False (for a model saved with and without one)."""
    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.chat import CHAT_PRESETS
    from engine.specs.tokenizer import TokenizerTraining

    tokenizer = train_tokenizer(texts, TokenizerTraining(algorithm="byte-bpe", vocab_size=vocab_size, min_frequency=1),
                                max_length, extra_specials=CHATML_MARKERS)
    if chat_template:
        tokenizer.chat_template = CHAT_PRESETS["chatml"][0]
    return tokenizer


def tiny_llama(tokenizer: PreTrainedTokenizerBase, max_positions: int = 256, hidden_size: int = 32, layers: int = 2,
               seed: int | None = 0, intermediate_size: int = 64, heads: int = 2,
               kv_heads: int | None = None) -> PreTrainedModel:
    """A llama causal LM with random weights over `tokenizer`'s vocabulary (intermediate size 64 and two
    attention heads unless given; `kv_heads` fewer key/value heads for grouped-query attention), and
    the tokenizer's bos, eos and pad ids (LlamaConfig's defaults for those it lacks). `seed` seeds torch
    first, so every call with the same arguments gives the same weights; None leaves torch's generator
    as it is."""
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig

    if seed is not None:
        torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads or heads,
        max_position_embeddings=max_positions, **_special_ids(tokenizer)))


def tiny_gpt2(tokenizer: PreTrainedTokenizerBase, hidden_size: int = 32, layers: int = 2, heads: int = 2,
              seed: int = 0) -> PreTrainedModel:
    """A GPT-2 with random weights over `tokenizer`'s vocabulary, with GPT-2's own 1024 positions and 4x
    feed-forward width (the shape transformers' GGUF reader rebuilds a GPT-2 with)."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(GPT2Config(vocab_size=len(tokenizer), n_embd=hidden_size, n_layer=layers,
                                                       n_head=heads, **_special_ids(tokenizer)))


def _special_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, int]:
    return {f"{name}_token_id": token_id for name in ("bos", "eos", "pad")
            if (token_id := getattr(tokenizer, f"{name}_token_id")) is not None}


def save_model(folder: Path, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> Path:
    """`model` and `tokenizer` saved together in `folder`, as a model folder the engine loads."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def random_lora_adapter(model: PreTrainedModel, base: Path, folder: Path) -> Path:
    """A rank-2 LoRA adapter on `model`'s q_proj and v_proj, recorded as trained on `base`, saved in
    `folder`. Its A and B are random (not the usual B = 0), so the adapter changes what the model says
    and merging it changes the weights. `model` is wrapped in place."""
    from peft import LoraConfig, get_peft_model

    model.name_or_path = str(base)  # what PEFT records as the adapter's base model
    lora = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, lora).save_pretrained(folder)
    return folder


def chat_and_plain_models(root: Path, texts: list[str]) -> tuple[Path, Path, PreTrainedTokenizerFast]:
    """One tiny llama (256 positions, a byte-level tokenizer of 300 tokens trained on `texts`) saved
    twice under `root`: `chat` with chatml's template in its tokenizer, `plain` without one; and the
    tokenizer (with the template)."""
    from engine.specs.chat import CHAT_PRESETS

    tokenizer = tiny_byte_bpe(texts, vocab_size=300, max_length=256, chat_template=False)
    model = tiny_llama(tokenizer, max_positions=256)
    plain = save_model(root / "plain", model, tokenizer)
    tokenizer.chat_template = CHAT_PRESETS["chatml"][0]
    return save_model(root / "chat", model, tokenizer), plain, tokenizer
