"""How long a sequence a model reads, from its configuration, and the one check of a length against it.

A model with learned position embeddings (GPT-2, BERT) has a row per position: a longer sequence
fails inside the model with an IndexError. A model with rotary embeddings (RoPE: Llama, Qwen, …)
runs past its length without a word, on positions it never learned. Every job checks its lengths
here before it loads a model's weights or trains: the sequences a training kind trains on
(data.max_length), the prompts and answers a generating kind writes.

Light: reads configuration objects, imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

from engine.errors import DataError, ModelError


def model_positions(config: Any) -> int | None:
    """The longest sequence the configuration says the model reads (`max_position_embeddings`, which
    GPT-2's `n_positions` answers to; times the factor of dynamic RoPE scaling, which keeps the trained
    length there and grows past it by itself), or None when it says none (state-space models)."""
    positions = getattr(config, "max_position_embeddings", None)
    if not (isinstance(positions, int) and positions > 0):
        return None
    scaling = rope_type(config)
    return int(positions * scaling[1]) if scaling and scaling[0] == "dynamic" else positions


def rope_type(config: Any) -> tuple[str, float] | None:
    """The RoPE scaling the configuration already has ((rope_type, factor)), or None for plain RoPE."""
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None)
    if not isinstance(params, dict) or params.get("rope_type", params.get("type", "default")) == "default":
        return None
    return params.get("rope_type", params.get("type")), float(params.get("factor") or 1.0)


def rotary(config: Any) -> bool:
    """Whether the model places tokens with rotary embeddings (it then runs past its length)."""
    return any(getattr(config, name, None) for name in ("rope_parameters", "rope_theta", "rope_scaling"))


def scale_rope(config: Any, scaling: Any) -> None:
    """Give `config` the RoPE scaling of a `model.rope_scaling` block (type, factor), as transformers 5 names
    it (`rope_parameters`: rope_type, factor, and for YaRN the trained length), keeping its rotary base.
    Linear and YaRN models then say they read positions × factor (`max_position_embeddings`); dynamic
    scaling keeps the trained length there, as transformers computes its growth from it."""
    original = model_positions(config)
    params = dict(getattr(config, "rope_parameters", None) or {})
    params.pop("type", None)
    params.update(rope_type=scaling.type, factor=float(scaling.factor))
    if scaling.type == "yarn":
        params["original_max_position_embeddings"] = original
    config.rope_parameters = params
    if scaling.type != "dynamic":
        config.max_position_embeddings = int(original * scaling.factor)


def check_rope_scaling(config: Any, scaling: Any, tokens: int, what: str, owner: str) -> str | None:
    """Check `tokens` (a training length) against the positions of the model of `config` once `scaling`
    (a `model.rope_scaling` block, or None) stretches them: a DataError past positions × factor, a
    ModelError for scaling a model without rotary positions or one scaled already. A rotary model asked
    to train past its positions without scaling gets a warning sentence back (None when all fits): it
    runs, on positions it never learned, which is what fine-tuning at a longer length does."""
    positions = model_positions(config)
    if scaling is not None:
        if not rotary(config):
            raise ModelError(f"model.rope_scaling is set, but {owner} has no rotary position embeddings (it learns "
                             f"one embedding per position, {positions or 'unknown'} of them).",
                             "Remove model.rope_scaling; a model with learned positions cannot read further.")
        if rope_type(config):
            kind, factor = rope_type(config)
            raise ModelError(f"model.rope_scaling is set, but {owner} is scaled already ({kind}, factor {factor:g}); "
                             f"its {positions:,} positions count that scaling.",
                             "Remove model.rope_scaling, or start from the unscaled model.")
        if positions is not None and tokens > positions * scaling.factor:
            raise DataError(f"{what} is {tokens:,} tokens, more than the {positions:,} positions {owner} reads "
                            f"× model.rope_scaling.factor {scaling.factor:g} = {int(positions * scaling.factor):,}.",
                            f"Raise model.rope_scaling.factor to at least {tokens / positions:.2f}, or lower {what}.")
        return None
    if positions is not None and tokens > positions and rotary(config):
        return (f"{what} is {tokens:,} tokens, more than the {positions:,} positions {owner} was trained on: past them "
                f"its rotary positions are ones it never learned. Set model.rope_scaling (linear, dynamic or yarn, "
                f"factor ≥ {tokens / positions:.2f}) to stretch them instead.")
    check_positions(config, tokens, what, owner, f"Set {what} to at most that many tokens.")
    return None


def check_positions(config: Any, tokens: int, what: str, owner: str, hint: str) -> None:
    """Raise DataError when `tokens` are more than the positions of the model of `config`.

    The message reads "{what} is {tokens} tokens, more than the {n} positions {owner} reads", e.g.
    what="data.max_length", owner="the base model out/model"; `hint` says what to do.
    """
    positions = model_positions(config)
    if positions is None or tokens <= positions:
        return
    past = ("past them its rotary position embeddings were never trained, so it would learn and answer on "
            "positions it does not know" if rotary(config)
            else "its position embeddings have no row past them, so it would fail on the first longer sequence")
    raise DataError(f"{what} is {tokens:,} tokens, more than the {positions:,} positions {owner} reads: {past}.",
                    hint)
