"""Does each exported file answer like the model it came from?

Every file is read back by transformers' GGUF loading (`from_pretrained(folder, gguf_file=...)`):
transformers rebuilds the config, the tensor names and the tokenizer from the file by its own
tables and dequantizes the tensors with gguf-py's reference code, so none of the writer's choices
is trusted. It is then compared, on CPU in float32, with the source model loaded as the spec names
it (a base model with its adapter on top, unmerged: the fold is checked too):

- tokenizer: the file's tokenizer gives the same token ids on every prompt and on the held-out text,
  and carries the chat template asked for;
- f16: greedy answers to the prompts are the same tokens, and no logit differs by more than
  `logits_tolerance`;
- every file: perplexity on the held-out text, within `q8_0_tolerance` of the source's for f16 and
  q8_0, within `q4_k_m_tolerance` for q4_k_m.
"""

from __future__ import annotations

import gc
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engine.errors import DataError, first_line
from engine.export.held_out import HELD_OUT_TEXT
from engine.specs.export import Verification

PERPLEXITY_WINDOW = 512  # tokens per forward pass (fewer when the model has fewer positions)


@dataclass
class Check:
    file: str  # the GGUF file, or "source"
    check: str  # tokenizer, chat template, loads, greedy, logits, perplexity
    passed: bool
    value: float | str | None
    limit: float | None
    detail: str


@dataclass
class SourceFigures:
    prompts: list[list[int]]
    greedy: list[list[int]]
    logits: list[torch.Tensor]
    held_out: list[int]
    perplexity: float


def held_out_text(settings: Verification) -> str:
    if not settings.held_out:
        return HELD_OUT_TEXT
    path = Path(settings.held_out).expanduser()
    if not path.is_file():
        raise DataError(f"The held-out text {path} (verify.held_out) does not exist.",
                        "Give a .txt file of text the model did not train on, or leave verify.held_out empty for "
                        "the built-in passages.")
    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise DataError(f"The held-out text {path} (verify.held_out) is empty.", "Give a file with text in it.")
    return text


def _greedy(model, ids: list[int], new_tokens: int, stops: list[int]) -> list[int]:
    from transformers import GenerationConfig

    config = GenerationConfig(do_sample=False, max_new_tokens=new_tokens, eos_token_id=stops or None,
                              pad_token_id=stops[0] if stops else 0)
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), generation_config=config, attention_mask=torch.ones(1, len(ids),
                                                                                                     dtype=torch.long))
    return out[0, len(ids):].tolist()


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float()


def perplexity(model, ids: list[int], window: int) -> float:
    """exp(mean negative log-likelihood) of `ids`, read in consecutive windows of `window` tokens."""
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start:start + window]])
            if chunk.shape[1] < 2:
                break
            logits = model(chunk).logits[0, :-1].float()
            total += torch.nn.functional.cross_entropy(logits, chunk[0, 1:], reduction="sum").item()
            count += chunk.shape[1] - 1
    return math.exp(total / count)


def measure_source(model, tokenizer, settings: Verification, stops: list[int], text: str) -> SourceFigures:
    window = min(PERPLEXITY_WINDOW, getattr(model.config, "max_position_embeddings", None)
                 or getattr(model.config, "n_positions", PERPLEXITY_WINDOW))
    prompts = [tokenizer(p)["input_ids"] for p in settings.prompts]
    held_out = tokenizer(text)["input_ids"][:settings.max_tokens]
    if len(held_out) < 2:
        raise DataError("The held-out text (verify.held_out) is shorter than two tokens.", "Give a longer text.")
    return SourceFigures(prompts, [_greedy(model, p, settings.max_new_tokens, stops) for p in prompts],
                         [_logits(model, p) for p in prompts], held_out, perplexity(model, held_out, window))


def check_tokenizer(folder: Path, name: str, tokenizer, settings: Verification, text: str,
                    template: str | None) -> list[Check]:
    """The file's tokenizer, as transformers rebuilds it, against the source's."""
    from transformers import AutoTokenizer

    try:
        rebuilt = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except Exception as e:  # noqa: BLE001 - any failure to rebuild is the finding
        return [Check(name, "tokenizer", False, None, None, f"transformers could not rebuild it: {first_line(e)}")]
    texts = [*settings.prompts, text]
    differing = [t for t in texts if rebuilt(t)["input_ids"] != tokenizer(t)["input_ids"]]
    detail = (f"same token ids on all {len(texts)} texts (the prompts and the held-out text)" if not differing else
              f"{len(differing)} of {len(texts)} texts tokenize differently, e.g. {differing[0][:60]!r}")
    own = rebuilt.chat_template if isinstance(rebuilt.chat_template, str) else None
    return [Check(name, "tokenizer", not differing, len(texts) - len(differing), len(texts), detail),
            Check(name, "chat template", own == template, "embedded" if own else "none", None,
                  "the chat template asked for" + (" is embedded" if own == template else " is not what the file holds"))]


def check_file(folder: Path, name: str, quantization: str, source: SourceFigures, settings: Verification,
               stops: list[int], window: int) -> list[Check]:
    """Greedy answers and logits (f16) and perplexity of one file against the source's figures."""
    from transformers import AutoModelForCausalLM

    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001 - the reader's failure is the finding
        return [Check(name, "loads", False, None, None, f"transformers could not load it: {first_line(e)}")]
    model.eval()
    checks = [Check(name, "loads", True, type(model).__name__, None, "transformers loads it")]
    try:
        if quantization == "f16":
            answers = [_greedy(model, p, settings.max_new_tokens, stops) for p in source.prompts]
            same = sum(a == b for a, b in zip(answers, source.greedy))
            checks.append(Check(name, "greedy", same == len(answers), same, len(answers),
                                f"{same} of {len(answers)} greedy answers ({settings.max_new_tokens} tokens at most) "
                                f"are the same tokens"))
            gap = max((_logits(model, p) - logits).abs().max().item() for p, logits in zip(source.prompts, source.logits))
            checks.append(Check(name, "logits", gap <= settings.logits_tolerance, round(gap, 6),
                                settings.logits_tolerance,
                                f"largest logit difference {gap:.2g} over every position of the prompts"))
        tolerance = settings.q4_k_m_tolerance if quantization == "q4_k_m" else settings.q8_0_tolerance
        value = perplexity(model, source.held_out, window)
        change = value / source.perplexity - 1
        checks.append(Check(name, "perplexity", abs(change) <= tolerance, round(value, 4), tolerance,
                            f"perplexity {value:.4g} against the source's {source.perplexity:.4g} on "
                            f"{len(source.held_out):,} held-out tokens ({change:+.2%})"))
    finally:
        del model
        gc.collect()
    return checks


def as_records(checks: list[Check]) -> list[dict]:
    return [asdict(c) for c in checks]


def markdown(checks: list[Check], source_perplexity: float | None) -> str:
    """The report as a table a person reads."""
    lines = ["# Verification", ""]
    if source_perplexity is None:
        return "\n".join(lines + ["Not verified: verify.enabled was off.", ""])
    lines += [f"Source model perplexity on the held-out text: {source_perplexity:.4g}.", "",
              "| file | check | result | detail |", "|---|---|---|---|"]
    lines += [f"| {c.file} | {c.check} | {'passed' if c.passed else '**FAILED**'} | {c.detail} |" for c in checks]
    return "\n".join(lines + [""])
