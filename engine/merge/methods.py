"""Merging whole models with mergekit (linear, SLERP, TIES; averaging is linear with equal weights),
and averaging the adapters of a LoRA run's checkpoints with PEFT.

mergekit reads the models tensor by tensor and writes the result in shards, so a merge holds a few
tensors in memory, not the models; it checks that the models share an architecture and shapes.
Adapters are averaged by PEFT's add_weighted_adapter with combination "cat": the updates B·A of the
checkpoints, weighted 1/N, concatenated into one adapter of their summed rank — the exact mean of the
updates (averaging A and B apart would not be), which is then folded into the base.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ModelError, first_line


def mergekit_merge(method: str, models: list[tuple[str, dict]], base: str | None, parameters: dict,
                   dtype: str, target: Path, trust_remote_code: bool) -> None:
    """Run mergekit's `method` on `models` ((path or hub id, its parameters) each) into `target`."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    config = {"merge_method": method, "models": [{"model": path, "parameters": p} for path, p in models],
              "parameters": parameters, "dtype": dtype}
    if base is not None:
        config["base_model"] = base
    try:
        run_merge(MergeConfiguration.model_validate(config), str(target),
                  MergeOptions(quiet=True, copy_tokenizer=True, trust_remote_code=trust_remote_code,
                               write_model_card=False, lazy_unpickle=True))
    except (RuntimeError, ValueError, KeyError, OSError) as e:
        raise ModelError(f"mergekit could not merge {', '.join(p for p, _ in models)}: {first_line(e)}",
                         "The models of a merge must share one architecture and the same shapes (fine-tunes of "
                         "one base model); check each entry of models (and base_model).") from None


def average_adapters(base: str, adapters: list[Path], dtype, target: Path, log) -> None:
    """The mean of `adapters`' updates folded into `base` (loaded in `dtype`), saved in `target`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from engine.models import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    names = [f"checkpoint_{i}" for i in range(len(adapters))]
    model = PeftModel.from_pretrained(model, str(adapters[0]), adapter_name=names[0])
    for name, adapter in zip(names[1:], adapters[1:]):
        model.load_adapter(str(adapter), adapter_name=name)
    model.add_weighted_adapter(names, [1 / len(names)] * len(names), "average", combination_type="cat")
    model.set_adapter("average")
    log("info", f"Averaged the updates of {len(adapters)} adapters; folding them into {base}.")
    merged = model.merge_and_unload(adapter_names=["average"])
    merged.save_pretrained(target, safe_serialization=True)
    tokenizer_source = adapters[-1] if (adapters[-1] / "tokenizer_config.json").exists() else base
    load_tokenizer(str(tokenizer_source), None).save_pretrained(target)
