"""Export a model to GGUF: the model (its adapter folded in first, into output/merged) → one GGUF file
per precision with the tokenizer and chat template inside, an Ollama Modelfile and a README, in
output/gguf/ → each file loaded back by transformers' GGUF reader and compared with the source model
(engine/export/verify.py) → output/gguf/verification.json and .md. A failed check fails the run; the
files and the report stay for a look.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import torch

from engine.errors import ModelError, UserError
from engine.export import verify
from engine.export.gguf_file import architecture_of, write_gguf
from engine.export.modelfile import modelfile
from engine.export.vocab import read_vocabulary
from engine.export.weights import FolderWeights
from engine.finetune.rendering import stop_token_ids
from engine.generate.models import load, prompt_template
from engine.merge.fold import fold_adapter
from engine.models import ModelChoice, load_tokenizer, resolve_choice
from engine.progress import ProgressMeter
from engine.rundir import atomic_write_text
from engine.runner import JobContext
from engine.specs.export import BYTES_PER_WEIGHT, ExportSpec
from engine.training.outputs import write_metrics, write_output


class VerificationFailed(UserError):
    type = "verification_failed"


def run(ctx: JobContext) -> dict:
    spec: ExportSpec = ctx.spec
    choice = resolve_choice(spec.model, ctx.run.path.parent.parent, "model")
    folder = model_folder(ctx, choice)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architecture_of(config, f"{choice.label} (model.path)")
    tokenizer = load_tokenizer(str(folder), "model.path", choice.trust_remote_code, choice.label)
    template = prompt_template(tokenizer, "auto" if spec.chat_template == "model" else spec.chat_template,
                               choice.label, ctx.events.log)
    stops = stop_ids(folder, tokenizer, template)
    files = write_files(ctx, choice, folder, config, tokenizer, template, stops)
    checks, source_perplexity = verify_files(ctx, choice, files, template, stops)
    return summarize(ctx, files, checks, source_perplexity)


def model_folder(ctx: JobContext, choice: ModelChoice) -> Path:
    """The folder the files are written from: the model's own, a hub model's downloaded snapshot, or
    output/merged when an adapter is folded in first."""
    if choice.adapter:
        ctx.events.log("info", f"Folding the adapter {choice.adapter} into {choice.base}.")
        target = write_output(ctx, "merged", lambda tmp: fold_adapter(choice, tmp, ctx.events.log))
        ctx.events.artifact("model", str(target), {"merged": True, "adapter": choice.adapter})
        return target
    if Path(choice.base).is_dir():
        return Path(choice.base)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(choice.base))
    except Exception as e:  # noqa: BLE001 - offline, unknown repo, no access: one message
        raise ModelError(f"Could not get {choice.base} (model.path) from the hub: {str(e).splitlines()[0]}",
                         "Check the id, or download the model once with the network (HF_HUB_OFFLINE=1 forbids "
                         "downloads).") from None


def stop_ids(folder: Path, tokenizer, template: str | None) -> list[int]:
    """eos, the template's end-of-turn marker, and the end tokens of the model's generation_config.json."""
    ids = stop_token_ids(tokenizer, template)
    settings = folder / "generation_config.json"
    if settings.is_file():
        eos = json.loads(settings.read_text(encoding="utf-8")).get("eos_token_id")
        ids += [i for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int)]
    return list(dict.fromkeys(ids))


def write_files(ctx: JobContext, choice: ModelChoice, folder: Path, config: dict, tokenizer,
                template: str | None, stops: list[int]) -> dict[str, Path]:
    """output/gguf/: a GGUF file per precision, the Modelfile and a README, written whole or not at all."""
    spec: ExportSpec = ctx.spec
    rows = config["vocab_size"]
    with FolderWeights(folder) as weights:
        tensors, parameters = len(weights.names()), sum(int(torch.Size(weights.shape(n)).numel()) for n in weights)
    sizes = ", ".join(f"{q} ≈ {parameters * BYTES_PER_WEIGHT[q] / 2**20:,.0f} MiB" for q in spec.quantizations)
    ctx.events.log("info", f"{choice.label}: {parameters:,} weights in {tensors} tensors ({sizes}).")
    progress = ProgressMeter(ctx, "export", tensors * len(spec.quantizations), "tensors", start=0)
    names = {q: f"{spec.name}-{q}.gguf" for q in spec.quantizations}
    results: dict[str, dict] = {}

    def write(tmp: Path) -> None:
        for quantization, name in names.items():
            ctx.check_cancelled()
            vocabulary = read_vocabulary(folder, rows, template, keep_own_template=spec.chat_template == "model")
            results[quantization] = write_gguf(tmp / name, folder, config, vocabulary, quantization, choice.label,
                                               lambda _tensor: progress.update(progress.done + 1))
            ctx.events.log("info", f"{name}: {results[quantization]['bytes'] / 2**20:,.1f} MiB "
                                   f"({', '.join(f'{n} {t}' for t, n in results[quantization]['tensor_types'].items())}).")
        if spec.ollama.enabled:
            chosen = spec.ollama.quantization or min(names, key=lambda q: results[q]["bytes"])
            texts = [tokenizer.decode([i]) for i in stops]
            made = modelfile(names[chosen], tokenizer, template, texts, spec.ollama,
                             config.get("max_position_embeddings") or config.get("n_positions"), choice.label)
            (tmp / "Modelfile").write_text(made.text, encoding="utf-8")
            ctx.events.log("info", f"Modelfile: FROM {names[chosen]}; template {made.template_note}; stops "
                                   f"{', '.join(repr(t) for t in texts) or 'none'}.")
        (tmp / "README.md").write_text(readme(spec, choice, names), encoding="utf-8")

    target = write_output(ctx, "gguf", write)
    progress.update(progress.total, force=True)
    for quantization, name in names.items():
        ctx.events.artifact("model", str(target / name), {"format": "gguf", "quantization": quantization,
                                                           "bytes": results[quantization]["bytes"]})
    return {q: target / name for q, name in names.items()}


def verify_files(ctx: JobContext, choice: ModelChoice, files: dict[str, Path], template: str | None,
                 stops: list[int]) -> tuple[list[verify.Check], float | None]:
    spec: ExportSpec = ctx.spec
    report = files[next(iter(files))].parent / "verification"
    if not spec.verify.enabled:
        ctx.events.log("warning", "Verification is off (verify.enabled: false): the files were not compared with "
                                  "the model.")
        atomic_write_text(report.with_suffix(".md"), verify.markdown([], None))
        return [], None
    text = verify.held_out_text(spec.verify)
    progress = ProgressMeter(ctx, "verify", len(files) + 1, "models", start=0)
    ctx.events.log("info", f"Verifying against {choice.description} on CPU in float32.")
    model, tokenizer = load(choice, "cpu", torch.float32, ctx.events.log)
    source = verify.measure_source(model, tokenizer, spec.verify, stops, text)
    window = min(verify.PERPLEXITY_WINDOW, getattr(model.config, "max_position_embeddings", None)
                 or getattr(model.config, "n_positions", verify.PERPLEXITY_WINDOW))
    del model
    gc.collect()
    progress.update(progress.done + 1, force=True)
    checks: list[verify.Check] = []
    for quantization, path in files.items():
        ctx.check_cancelled()
        found = verify.check_tokenizer(path.parent, path.name, tokenizer, spec.verify, text, template)
        found += verify.check_file(path.parent, path.name, quantization, source, spec.verify, stops, window)
        for check in found:
            ctx.events.log("info" if check.passed else "error",
                           f"{check.file}: {check.check} {'passed' if check.passed else 'FAILED'}: {check.detail}.")
        checks += found
        progress.update(progress.done + 1, force=True)
    atomic_write_text(report.with_suffix(".json"), json.dumps(
        {"source": choice.description, "source_perplexity": source.perplexity, "held_out_tokens": len(source.held_out),
         "prompts": spec.verify.prompts, "checks": verify.as_records(checks)}, indent=1))
    atomic_write_text(report.with_suffix(".md"), verify.markdown(checks, source.perplexity))
    ctx.events.artifact("report", str(report.with_suffix(".md")),
                        {"passed": sum(c.passed for c in checks), "checks": len(checks)})
    return checks, source.perplexity


def summarize(ctx: JobContext, files: dict[str, Path], checks: list[verify.Check],
              source_perplexity: float | None) -> dict:
    summary = {"output": str(next(iter(files.values())).parent), "files": {q: p.name for q, p in files.items()},
               "verified": bool(checks) and all(c.passed for c in checks),
               "checks_passed": sum(c.passed for c in checks), "checks": len(checks)}
    if source_perplexity is not None:
        summary["source_perplexity"] = round(source_perplexity, 4)
        summary.update({f"{c.file.rsplit('-', 1)[-1].removesuffix('.gguf')}_perplexity": c.value
                        for c in checks if c.check == "perplexity"})
    write_metrics(ctx, summary)
    failed = [c for c in checks if not c.passed]
    if failed:
        first = failed[0]
        raise VerificationFailed(
            f"{len(failed)} of {len(checks)} verification checks failed; first: {first.file}, {first.check}: "
            f"{first.detail}.",
            "The files and output/gguf/verification.md are kept. A tokenizer that splits text differently or a "
            "file transformers cannot load needs a fix in the export; a perplexity just over its limit can be "
            "accepted by raising verify.q8_0_tolerance or verify.q4_k_m_tolerance.")
    return summary


def readme(spec: ExportSpec, choice: ModelChoice, names: dict[str, str]) -> str:
    first = next(iter(names.values()))
    rows = "\n".join(f"| {q} | `{name}` |" for q, name in names.items())
    return "\n".join([
        f"# {spec.name}", "", f"GGUF files of {choice.description}, exported by Atelier.", "",
        "| precision | file |", "|---|---|", rows, "",
        "## Use", "", "```sh", f"llama-cli -m {first} -cnv", "ollama create " + spec.name + " -f Modelfile",
        f"ollama run {spec.name}", "```", "",
        "verification.md says how each file was compared with the model it came from.", ""])
