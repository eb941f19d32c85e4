"""Loading a tokenizer: the one place transformers' AutoTokenizer is called, so that every job gets
the same pad token and the same message when the files are missing.

transformers is imported when a tokenizer is loaded, not with this module.
"""

from __future__ import annotations

from engine.errors import ModelError, first_line
from engine.models.choice import ModelChoice


def load_tokenizer(source: str, field: str | None, trust_remote_code: bool = False, label: str | None = None):
    """The tokenizer of a model or tokenizer folder, or a hub id (`field`: where the spec names it;
    `label`: what messages call it), with a pad token: the eos token when it has none, as causal
    models usually do (batches need padding; labels and attention masks leave it out)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except Exception as e:  # noqa: BLE001 - a missing or damaged tokenizer raises many types
        named = f" ({field})" if field else ""
        raise ModelError(f"Could not load the tokenizer of {label or source}{named}: {first_line(e)}",
                         "The model folder needs its tokenizer files (tokenizer.json or the model's own); a hub id "
                         "needs the network once (HF_HUB_OFFLINE=1 forbids downloads).") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def choice_tokenizer(choice: ModelChoice):
    """The tokenizer a model entry reads with: its adapter's when the adapter saved one, else its base model's."""
    source, field = choice.tokenizer_source
    return load_tokenizer(source, field, choice.trust_remote_code, choice.label)
