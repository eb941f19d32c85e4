"""Tokens/s and time to first token of `studio-engine serve` against `model.generate` called directly.

The same model (a llama of about 7M parameters with a tokenizer trained on the standard library's
docstrings, random weights: speed does not depend on them), the same prompts, seeds and sampling,
in the same run: each prompt goes to the serve process (through its stdin/stdout, timed here, in the
client, from writing the request to reading the lines) and then to `model.generate` in this process
(timed around the call, the first token seen by a streamer), for several rounds; the medians are
compared. Both produce the same text (checked). Prints one JSON line. Target: ratio ≥ 0.9.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/serve_throughput.py [--rounds 3] [--max-new-tokens 128]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, LlamaConfig, LogitsProcessorList  # noqa: E402
from transformers.generation.streamers import BaseStreamer  # noqa: E402

from engine.data.builtin import python_docs_documents  # noqa: E402
from engine.data.tokenizer_training import train_tokenizer  # noqa: E402
from engine.finetune.rendering import text_ids  # noqa: E402
from engine.generate.models import load, stop_ids  # noqa: E402
from engine.generate.sampling import SeededSampler  # noqa: E402
from engine.models import resolve_choice  # noqa: E402
from engine.serve.protocol import ServeSampling  # noqa: E402
from engine.specs.generate import ModelSource  # noqa: E402
from engine.specs.tokenizer import TokenizerTraining  # noqa: E402

PROMPTS = 4
# A pause before each timed generation: the other process's OpenMP threads spin for a while after
# its last step, and on two cores that spinning would be charged to whichever side runs next.
SETTLE_S = 0.3


def build_model(folder: Path, hidden: int, layers: int) -> tuple[int, list[str]]:
    """(parameters, prompts): a random llama and its tokenizer saved in `folder`."""
    documents = [d["text"] for d in python_docs_documents()]
    tokenizer = train_tokenizer(iter(documents[:4000]), TokenizerTraining(vocab_size=4096), 1024)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 8 // 3, num_hidden_layers=layers,
        num_attention_heads=hidden // 64, max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    prompts = [d[:300] for d in documents[5000:5000 + 40 * PROMPTS:40]]
    return model.num_parameters(), prompts


class FirstToken(BaseStreamer):
    """Notes when the first generated token comes out of `generate` (the prompt is put first)."""

    def __init__(self):
        self.puts, self.first = 0, None

    def put(self, value) -> None:
        self.puts += 1
        if self.puts == 2:
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def direct(model, tokenizer, prompt: str, seed: int, sampling: ServeSampling, stops: list[int]) -> dict:
    """One answer from `model.generate` in this process, timed from the prompt text on (as serve is)."""
    clock = FirstToken()
    started = time.perf_counter()
    ids = text_ids(prompt, tokenizer)
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids], device=device),
                             attention_mask=torch.ones(1, len(ids), dtype=torch.long, device=device),
                             max_new_tokens=sampling.max_new_tokens, do_sample=False, eos_token_id=stops,
                             pad_token_id=tokenizer.pad_token_id, streamer=clock,
                             logits_processor=LogitsProcessorList([SeededSampler([seed], sampling)]))
    ended = time.perf_counter()
    answer = out[0, len(ids):].tolist()
    tokens = len(answer)
    text = tokenizer.decode([t for t in answer if t not in stops], skip_special_tokens=True)
    return {"ttft_s": clock.first - started, "tokens_per_s": (tokens - 1) / (ended - clock.first), "tokens": tokens,
            "text": text}


class Serve:
    """The serve process; a thread reads its stdout and notes when the first token and `done` of the
    current request arrive (this thread sleeps meanwhile: a client woken by every token would take
    CPU time from the server it measures)."""

    def __init__(self, device: str, precision: str):
        self.process = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", "--device", device,
                                         "--precision", precision],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                        cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.first: float | None = None
        self.ended: tuple[float, dict] | None = None
        self._finished = threading.Event()
        self._until = "ready"
        threading.Thread(target=self._read, daemon=True).start()
        self._wait()

    def _read(self) -> None:
        for line in self.process.stdout:
            at = time.perf_counter()
            message = json.loads(line)
            if message["type"] == "token" and self.first is None:
                self.first = at
            elif message["type"] in (self._until, "error"):
                self.ended = at, message
                self._finished.set()

    def _wait(self) -> tuple[float, dict]:
        self._finished.wait(timeout=600)
        at, message = self.ended
        if message["type"] == "error":
            raise RuntimeError(message)
        return at, message

    def request(self, request: dict, until: str) -> tuple[float, float, dict]:
        """(when it was sent, when the answer `until` came, the answer)."""
        self.first, self.ended, self._until = None, None, until
        self._finished.clear()
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        sent = time.perf_counter()
        at, message = self._wait()
        return sent, at, message

    def generate(self, model_id: str, prompt: str, seed: int, sampling: ServeSampling) -> dict:
        sent, ended, done = self.request({"op": "generate", "id": seed, "model_id": model_id, "prompt": prompt,
                                          "chat_template": "none",
                                          "sampling": {**sampling.model_dump(), "seed": seed}}, "done")
        return {"ttft_s": self.first - sent, "tokens_per_s": (done["tokens"] - 1) / (ended - self.first),
                "tokens": done["tokens"], "text": done["text"], "server_ttft_s": done["ttft_s"],
                "server_tokens_per_s": done["tokens_per_s"]}

    def close(self) -> None:
        self.request({"op": "shutdown", "id": "bye"}, "shutdown")
        self.process.wait(timeout=60)


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=6)
    args = parser.parse_args()
    sampling = ServeSampling(max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as tmp:
        parameters, prompts = build_model(Path(tmp), args.hidden, args.layers)
        dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
        choice = resolve_choice(ModelSource(path=tmp), None, "model")
        model, tokenizer = load(choice, args.device, dtype, lambda *_: None)
        stops = stop_ids(model, tokenizer, None)
        serve = Serve(args.device, args.precision)
        model_id = serve.request({"op": "load", "id": "load", "model": {"path": tmp}}, "loaded")[2]["model_id"]
        serve.generate(model_id, prompts[0], 0, sampling)  # warm-up: first-call costs on both sides
        direct(model, tokenizer, prompts[0], 0, sampling, stops)
        served, called = [], []
        for _ in range(args.rounds):  # interleaved, so the machine's drift hits both alike
            for i, prompt in enumerate(prompts):
                time.sleep(SETTLE_S)
                served.append(serve.generate(model_id, prompt, 100 + i, sampling))
                time.sleep(SETTLE_S)
                called.append(direct(model, tokenizer, prompt, 100 + i, sampling, stops))
        serve.close()
    same = all(s["text"] == c["text"] and s["tokens"] == c["tokens"] for s, c in zip(served, called))
    print(json.dumps({
        "bench": "serve_throughput", "device": args.device, "precision": args.precision, "threads": torch.get_num_threads(),
        "parameters": parameters, "prompts": len(prompts), "rounds": args.rounds,
        "max_new_tokens": args.max_new_tokens, "mean_tokens": round(statistics.mean(r["tokens"] for r in served), 1),
        "same_text": same,
        "serve_tokens_per_s": round(median(served, "tokens_per_s"), 1),
        "direct_tokens_per_s": round(median(called, "tokens_per_s"), 1),
        "tokens_per_s_ratio": round(median(served, "tokens_per_s") / median(called, "tokens_per_s"), 3),
        "serve_ttft_ms": round(1000 * median(served, "ttft_s"), 2),
        "direct_ttft_ms": round(1000 * median(called, "ttft_s"), 2),
        "ttft_ratio": round(median(called, "ttft_s") / median(served, "ttft_s"), 3),
        # Best of the runs: what each path does when the machine's other work leaves it alone.
        "best_tokens_per_s_ratio": round(max(r["tokens_per_s"] for r in served) /
                                         max(r["tokens_per_s"] for r in called), 3),
        "best_ttft_ratio": round(min(r["ttft_s"] for r in called) / min(r["ttft_s"] for r in served), 3),
        "server_reported_tokens_per_s": round(median(served, "server_tokens_per_s"), 1),
        "server_reported_ttft_ms": round(1000 * median(served, "server_ttft_s"), 2),
        "target_ratio": 0.9,
    }))


if __name__ == "__main__":
    main()
