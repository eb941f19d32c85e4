"""Pack documents into fixed-length training sequences.

Documents are tokenized, joined end to end with separator tokens and cut into blocks of exactly
`context_length` tokens, as transformers' run_clm/run_mlm examples do: no padding is ever trained
on. Packing happens per batch of 1000 documents, so each batch drops its last partial block.
"""

from __future__ import annotations

from itertools import chain

import datasets
from transformers import PreTrainedTokenizerBase

from engine.errors import DataError, TokenizerError

_BATCH = 1000


def pack_for_causal_lm(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, context_length: int,
                       num_proc: int = 1) -> datasets.Dataset:
    """Blocks of `context_length` token ids: `[bos] doc [eos] [bos] doc [eos] …` cut at fixed length.

    bos is added when the tokenizer has one distinct from eos (GPT-2 uses one token for both).
    Returns a dataset with the single column "input_ids". Raises DataError when the documents
    hold fewer tokens than one block.
    """
    if tokenizer.eos_token_id is None:
        raise TokenizerError("The tokenizer has no eos token to separate documents.",
                             "Use a tokenizer with an eos token, or train one (tokenizer.train).")
    bos = tokenizer.bos_token_id
    prefix = [bos] if bos is not None and bos != tokenizer.eos_token_id else []
    return _pack(dataset, tokenizer, context_length, num_proc, prefix, [tokenizer.eos_token_id], [], [])


def pack_for_masked_lm(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, context_length: int,
                       num_proc: int = 1) -> datasets.Dataset:
    """Blocks of `context_length` token ids, BERT style: `[CLS] doc [SEP] doc … [SEP]`.

    Documents are joined with [SEP]; each block is wrapped in [CLS] … [SEP] (bos/eos when the
    tokenizer has no cls/sep). Returns the single column "input_ids"; raises DataError when the
    documents hold fewer tokens than one block.
    """
    cls = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if cls is None or sep is None:
        raise TokenizerError("The tokenizer has no [CLS]/[SEP] (or bos/eos) tokens for masked-LM sequences.",
                             "Train a tokenizer for the mlm objective, or use a BERT-style tokenizer.")
    if context_length < 3:
        raise DataError(f"context_length {context_length} leaves no room between [CLS] and [SEP].",
                        "Use a context_length of 16 or more.")
    return _pack(dataset, tokenizer, context_length - 2, num_proc, [], [sep], [cls], [sep])


def _pack(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, block: int, num_proc: int,
          doc_prefix: list[int], doc_suffix: list[int], block_prefix: list[int],
          block_suffix: list[int]) -> datasets.Dataset:
    def tokenize_and_cut(batch: dict[str, list]) -> dict[str, list]:
        # add_special_tokens=False: separators are added here, the same way for every tokenizer.
        encoded = tokenizer(batch["text"], add_special_tokens=False, return_attention_mask=False)["input_ids"]
        stream = list(chain.from_iterable(doc_prefix + ids + doc_suffix for ids in encoded))
        usable = len(stream) - len(stream) % block
        return {"input_ids": [block_prefix + stream[i:i + block] + block_suffix for i in range(0, usable, block)]}

    packed = dataset.map(tokenize_and_cut, batched=True, batch_size=_BATCH, remove_columns=dataset.column_names,
                         num_proc=num_proc if num_proc > 1 else None, desc="Packing sequences")
    if len(packed) == 0:
        total = _count_tokens(dataset, tokenizer, len(doc_prefix) + len(doc_suffix))
        length = block + len(block_prefix) + len(block_suffix)
        raise DataError(
            f"The {len(dataset)} training documents hold {total} tokens, fewer than one sequence of "
            f"context_length {length}.",
            "Lower model.context_length or add more documents to data.sources.")
    return packed


def _count_tokens(dataset: datasets.Dataset, tokenizer: PreTrainedTokenizerBase, per_doc: int) -> int:
    # Only reached when the corpus is smaller than one block, so this loop is short.
    texts = dataset["text"]
    if not texts:
        return 0
    encoded = tokenizer(list(texts), add_special_tokens=False, return_attention_mask=False)["input_ids"]
    return sum(len(ids) + per_doc for ids in encoded)
