"""Train a tokenizer: corpus → held-out sample → trained tokenizer with special tokens and chat
template → saved folder → compression report against the tokenizers the user compares with.

The training itself is the `tokenizers` library's Rust trainer (engine/data/tokenizer_training.py);
this file wires the spec to it, checks the result, and measures it.
"""

from __future__ import annotations

import json

import datasets
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

from engine.data.sources import load_documents
from engine.data.tokenizer_report import measure, report
from engine.data.tokenizer_training import PipelineOptions, load_tokenizer, train_tokenizer
from engine.errors import TokenizerError
from engine.rundir import atomic_directory, atomic_write_text
from engine.runner import JobContext
from engine.specs.tokenizer import TokenizerJobSpec

TEST_CONVERSATION = [{"role": "user", "content": "What is two plus two?"},
                     {"role": "assistant", "content": "Four."}]


def run(ctx: JobContext) -> dict:
    spec: TokenizerJobSpec = ctx.spec
    datasets.disable_progress_bars()
    specials = spec.special_tokens.resolved(spec.tokenizer.algorithm)
    check_chat_template(spec, specials, PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"x": 0}, unk_token="x")), **specials))
    comparisons = load_comparisons(ctx)
    ctx.check_cancelled()

    train_texts, sample = load_corpus(ctx)
    ctx.check_cancelled()
    tokenizer = train(ctx, train_texts, specials)
    ctx.check_cancelled()
    path = save(ctx, tokenizer)

    figures = report_on_sample(ctx, tokenizer, comparisons, sample)
    trained = figures["tokenizers"][0]
    return {"tokenizer": path, "vocab_size": len(tokenizer),
            **{k: round(trained[k], 4) for k in ("bytes_per_token", "chars_per_token", "tokens_per_word",
                                                   "unk_rate", "vocab_used")}}


def check_chat_template(spec: TokenizerJobSpec, specials: dict[str, str], tokenizer) -> str | None:
    """Render the chat template on a two-message conversation; TokenizerError naming the field if it fails."""
    template = spec.chat.jinja
    if template is None:
        return None
    field = "chat.custom_template" if spec.chat.template == "custom" else "chat.template"
    try:
        text = tokenizer.apply_chat_template(TEST_CONVERSATION, chat_template=template, tokenize=False,
                                             add_generation_prompt=False)
    except Exception as e:  # noqa: BLE001 - Jinja raises syntax, undefined and user exceptions alike
        raise TokenizerError(
            f"The chat template in {field} does not render a two-message conversation: "
            f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}".rstrip(": "),
            f"Fix the Jinja in {field} (it receives `messages`, `add_generation_prompt`, bos_token and "
            f"eos_token), or pick a preset: chatml, llama3, plain.") from None
    if not isinstance(text, str) or "Four." not in text:
        raise TokenizerError(f"The chat template in {field} leaves out the messages' content.",
                             f"Make {field} print message['content'] for every message.")
    return text


def load_comparisons(ctx: JobContext) -> list[tuple[str, PreTrainedTokenizerFast]]:
    """Load every tokenizer named in report.compare_with before training, so a typo fails at once."""
    loaded = []
    for i, where in enumerate(ctx.spec.report.compare_with):
        try:
            loaded.append((where, load_tokenizer(where)))
        except TokenizerError as e:
            raise TokenizerError(f"report.compare_with[{i}]: {e.message}",
                                 "Name a saved tokenizer folder (one with tokenizer.json) or a hub id "
                                 "available offline, or remove it from report.compare_with.") from None
    return loaded


def load_corpus(ctx: JobContext) -> tuple[list[str], list[str]]:
    """Training texts, and the held-out sample the report measures on (never seen by the trainer)."""
    spec = ctx.spec

    def progress(message: str, done: int, total: int | None) -> None:
        ctx.events.progress("corpus", done, total, "sources")

    documents = load_documents(spec.data, spec.seed, progress)
    train_texts = documents["train"]["text"]
    sample = documents["eval"]["text"][:spec.report.sample_documents]
    if not sample:
        ctx.events.log("warning", "No held-out documents (data.eval_fraction is 0, or one document): the report "
                                  "measures on training documents, which flatters the trained tokenizer.")
        sample = train_texts[:spec.report.sample_documents]
    chars = sum(len(t) for t in train_texts)
    ctx.events.log("info", f"Corpus: {len(train_texts)} training documents ({chars / 1e6:.2f}M characters), "
                           f"{len(sample)} held out for the report.")
    return train_texts, sample


def train(ctx: JobContext, texts: list[str], specials: dict[str, str]) -> PreTrainedTokenizerFast:
    spec = ctx.spec
    total = len(texts)

    def progress(message: str, done: int, _total: int | None) -> None:
        ctx.events.progress("tokenizer", done, total, "documents")
        ctx.check_cancelled()

    options = PipelineOptions(unicode=spec.normalization.unicode, lowercase=spec.normalization.lowercase,
                              split_digits=spec.pre_tokenization.split_digits,
                              prefix_space=spec.pre_tokenization.prefix_space)
    objective = "mlm" if spec.tokenizer.algorithm == "wordpiece" else "clm"
    tokenizer = train_tokenizer(iter(texts), spec.tokenizer, spec.model_max_length, objective, progress,
                                specials=specials, extra_specials=[*spec.special_tokens.extra, *spec.chat.special_tokens],
                                options=options)
    if len(tokenizer) > spec.tokenizer.vocab_size:
        # WordPiece and Unigram keep every character of the corpus, whatever the vocabulary size.
        raise TokenizerError(
            f"tokenizer.vocab_size ({spec.tokenizer.vocab_size}) is smaller than this corpus's alphabet: the "
            f"{spec.tokenizer.algorithm} trainer needed {len(tokenizer)} tokens for its characters and special tokens.",
            f"Raise tokenizer.vocab_size above {len(tokenizer)}, or use byte-bpe or bpe (byte fallback), "
            f"whose alphabet is 256 bytes.")
    if spec.chat.jinja is not None:
        tokenizer.chat_template = spec.chat.jinja
        check_chat_template(spec, specials, tokenizer)
    ctx.events.progress("tokenizer", total, total, "documents")
    ctx.events.log("info", f"Trained a {spec.tokenizer.algorithm} tokenizer of {len(tokenizer)} tokens.")
    return tokenizer


def save(ctx: JobContext, tokenizer: PreTrainedTokenizerFast) -> str:
    target = ctx.run.output_dir / "tokenizer"
    with atomic_directory(target) as tmp:
        tokenizer.save_pretrained(tmp)
    ctx.events.artifact("tokenizer", str(target), {"vocab_size": len(tokenizer),
                                                   "algorithm": ctx.spec.tokenizer.algorithm,
                                                   "chat_template": ctx.spec.chat.template})
    return str(target)


def report_on_sample(ctx: JobContext, tokenizer, comparisons, sample: list[str]) -> dict:
    spec = ctx.spec
    longest = spec.report.longest_tokens
    rows = [measure(spec.name, tokenizer, sample, longest)]
    for i, (where, other) in enumerate(comparisons):
        ctx.check_cancelled()
        ctx.events.progress("report", i + 1, len(comparisons) + 1, "tokenizers")
        rows.append(measure(where, other, sample, longest))
    figures = report(rows, sample)
    target = ctx.run.output_dir / "report.json"
    atomic_write_text(target, json.dumps(figures, indent=2, ensure_ascii=False))
    atomic_write_text(ctx.run.output_dir / "report.md", figures["table"] + "\n")
    trained = figures["tokenizers"][0]
    ctx.events.metric(0, "eval", {k: trained[k] for k in ("bytes_per_token", "chars_per_token", "tokens_per_word",
                                                           "unk_rate", "vocab_used")})
    ctx.events.artifact("report", str(target), {"table": figures["table"]})
    ctx.events.log("info", "Tokenizer report on the held-out sample:\n" + figures["table"])
    return figures
