"""Build a freshly initialised transformers model from a ModelSpec and a tokenizer."""

from __future__ import annotations

from transformers import (
    AutoModelForCausalLM,
    BertConfig,
    BertForMaskedLM,
    GPT2Config,
    LlamaConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from engine.models.positions import scale_rope
from engine.sizing import intermediate_size
from engine.specs.pretrain import ModelSpec


def build_config(model: ModelSpec, tokenizer: PreTrainedTokenizerBase):
    vocab = len(tokenizer)
    special = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                   pad_token_id=tokenizer.pad_token_id)
    if model.architecture == "llama":
        config = LlamaConfig(
            vocab_size=vocab, hidden_size=model.hidden_size, num_hidden_layers=model.layers,
            num_attention_heads=model.heads, num_key_value_heads=model.kv_heads or model.heads,
            intermediate_size=intermediate_size(model), max_position_embeddings=model.context_length,
            attention_dropout=model.dropout, tie_word_embeddings=model.tie_embeddings, **special)
        if model.rope_scaling is not None:
            scale_rope(config, model.rope_scaling)
        return config
    if model.architecture == "gpt2":
        return GPT2Config(
            vocab_size=vocab, n_embd=model.hidden_size, n_layer=model.layers, n_head=model.heads,
            n_inner=intermediate_size(model), n_positions=model.context_length,
            resid_pdrop=model.dropout, embd_pdrop=model.dropout, attn_pdrop=model.dropout,
            tie_word_embeddings=model.tie_embeddings, **special)
    return BertConfig(
        vocab_size=vocab, hidden_size=model.hidden_size, num_hidden_layers=model.layers,
        num_attention_heads=model.heads, intermediate_size=intermediate_size(model),
        max_position_embeddings=model.context_length, hidden_dropout_prob=model.dropout,
        attention_probs_dropout_prob=model.dropout, tie_word_embeddings=model.tie_embeddings,
        pad_token_id=tokenizer.pad_token_id)


def build_model(model: ModelSpec, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    config = build_config(model, tokenizer)
    if model.resolved_objective == "mlm":
        return BertForMaskedLM(config)
    return AutoModelForCausalLM.from_config(config)
