"""GGUF export of a model larger than half the memory it is allowed: the export streams one tensor at
a time, so it fits where a load of the model would not leave room for a second copy.

A llama of `--layers` layers of width 2048 (float32, sharded safetensors, random weights) is written
to a temporary folder; then the real engine (`studio-engine run`, kind: export, f16 + q8_0 + q4_k_m,
verification off: verifying loads the model whole, twice) runs in a child process whose address space
is capped with setrlimit(RLIMIT_AS) at `--cap-ratio` × the model's bytes (below 2: the model is larger
than half the cap). Everything counts towards that cap: the engine's own footprint (the address space
it reserves before reading a weight — imports, threads — measured in a first child and reported), and
the weight files, which safetensors maps whole. Prints one JSON line: the model's bytes, the cap, the
child's peak address space (VmPeak), peak resident memory (VmHWM, which counts the mapped weight
pages the kernel may drop at any time) and peak anonymous memory (RssAnon, sampled: what the export
itself allocated), seconds, and the files' sizes; `model_over_half_the_cap` and
`completed` must both be true.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/export_memory.py [--layers 12] [--cap-ratio 1.9]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HIDDEN, INTERMEDIATE, SHARD_LAYERS = 2048, 5632, 2
# What the engine process reserves before it reads a weight: imports, threads, the runner.
FOOTPRINT_PROBE = ("import resource, sys, torch, transformers, gguf, numpy; import engine.jobs.export, engine.runner; "
                   "torch.ones(1) @ torch.ones(1); "
                   "print([l for l in open('/proc/self/status') if l.startswith('VmPeak')][0].split()[1])")


def build_model(folder: Path, layers: int) -> int:
    """A llama saved as save_pretrained would, shard by shard (two layers each); returns its bytes."""
    import torch
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.tokenizer import TokenizerTraining

    folder.mkdir(parents=True)
    texts = [f"a bench of the export, line {i}, with some words to merge" for i in range(300)]
    tokenizer = train_tokenizer(texts, TokenizerTraining(algorithm="byte-bpe", vocab_size=300, min_frequency=1), 512)
    tokenizer.save_pretrained(folder)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=INTERMEDIATE,
                         num_hidden_layers=layers, num_attention_heads=16, num_key_value_heads=16,
                         max_position_embeddings=512, tie_word_embeddings=False)
    config.save_pretrained(folder)
    generator = torch.Generator().manual_seed(0)

    def normal(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.02

    weight_map: dict[str, str] = {}
    shards = [("embeddings", {"model.embed_tokens.weight": normal(len(tokenizer), HIDDEN),
                              "model.norm.weight": torch.ones(HIDDEN),
                              "lm_head.weight": normal(len(tokenizer), HIDDEN)})]
    for start in range(0, layers, SHARD_LAYERS):
        shards.append((f"layers-{start}", None))
    total = 0
    for index, (label, tensors) in enumerate(shards):
        if tensors is None:
            start = int(label.split("-")[1])
            tensors = {}
            for layer in range(start, min(start + SHARD_LAYERS, layers)):
                p = f"model.layers.{layer}."
                for name in ("q_proj", "k_proj", "v_proj", "o_proj"):
                    tensors[f"{p}self_attn.{name}.weight"] = normal(HIDDEN, HIDDEN)
                tensors[f"{p}mlp.gate_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
                tensors[f"{p}mlp.up_proj.weight"] = normal(INTERMEDIATE, HIDDEN)
                tensors[f"{p}mlp.down_proj.weight"] = normal(HIDDEN, INTERMEDIATE)
                tensors[f"{p}input_layernorm.weight"] = torch.ones(HIDDEN)
                tensors[f"{p}post_attention_layernorm.weight"] = torch.ones(HIDDEN)
        name = f"model-{index + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        total += sum(t.numel() * t.element_size() for t in tensors.values())
        weight_map.update(dict.fromkeys(tensors, name))
        del tensors
    (folder / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total


def engine_footprint() -> int:
    """Bytes of address space the engine's process holds before an export reads weights."""
    out = subprocess.run([sys.executable, "-c", FOOTPRINT_PROBE], capture_output=True, text=True, cwd=ROOT, check=True)
    return int(out.stdout.strip().splitlines()[-1]) * 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--cap-ratio", type=float, default=1.9,
                        help="the address-space cap as a multiple of the model's bytes (below 2)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="atelier-export-bench-") as tmp:
        model_bytes = build_model(Path(tmp) / "model", args.layers)
        footprint = engine_footprint()
        cap = int(args.cap_ratio * model_bytes)
        spec = Path(tmp) / "export.yaml"
        spec.write_text(json.dumps({"kind": "export", "name": "bench", "model": {"path": str(Path(tmp) / "model")},
                                    "quantizations": ["f16", "q8_0", "q4_k_m"], "verify": {"enabled": False}}))

        def capped() -> None:
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

        began = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", "engine.cli", "--workspace", str(Path(tmp) / "ws"), "run",
                                  str(spec), "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                 cwd=ROOT, preexec_fn=capped)
        peaks = {"VmHWM": 0, "RssAnon": 0, "VmPeak": 0}
        status = Path(f"/proc/{child.pid}/status")
        while child.poll() is None:
            try:
                for line in status.read_text().splitlines():
                    key = line.split(":")[0]
                    if key in peaks:
                        peaks[key] = max(peaks[key], int(line.split()[1]) * 1024)
            except OSError:
                pass
            time.sleep(0.2)
        seconds = time.monotonic() - began
        events = [json.loads(line) for line in child.stdout.read().splitlines() if line.startswith("{")]
        finished = events[-1] if events else {}
        sizes = {e["meta"]["quantization"]: e["meta"]["bytes"] for e in events
                 if e.get("type") == "artifact" and e.get("meta", {}).get("format") == "gguf"}
    print(json.dumps({
        "bench": "export_memory", "layers": args.layers, "model_bytes": model_bytes,
        "engine_footprint_bytes": footprint, "address_space_cap_bytes": cap,
        "model_over_half_the_cap": model_bytes > cap / 2,
        "peak_address_space_bytes": peaks["VmPeak"], "peak_resident_bytes": peaks["VmHWM"],
        "peak_anonymous_bytes": peaks["RssAnon"],
        "peak_anonymous_over_model": round(peaks["RssAnon"] / model_bytes, 3),
        "seconds": round(seconds, 1), "completed": finished.get("status") == "completed",
        "error": (finished.get("error") or {}).get("message"), "file_bytes": sizes}))
    return 0 if finished.get("status") == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
