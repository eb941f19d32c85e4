"""The tokenizer job's training against the `tokenizers` trainer called directly, and its compression
against SentencePiece at the same vocabulary size.

1. Time and peak memory: the job's training step (engine.jobs.tokenizer.train: events, special
   tokens, chat markers, chat-template check) against a bare byte-level BpeTrainer on the same
   texts. Each measurement runs in a fresh child process (the Rust trainer's memory is invisible
   to tracemalloc), engine and direct interleaved, median of each; peak memory is the child's
   VmHWM minus its resident size just before training (both children import the same modules).
   Target: speed ratio (direct time / job time) ≥ 0.9.
2. Bytes per token on the same held-out sample: the job's byte-bpe tokenizer against a
   SentencePiece BPE model (byte fallback, identity normalisation) trained in the same run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tokenizer_train.py [--vocab 8192] [--rounds 3] [--repeat 4]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def bench_spec(vocab: int):
    from engine.specs import parse_spec
    return parse_spec({"kind": "tokenizer", "name": "bench", "data": {"sources": ["builtin:python-docs"]},
                       "tokenizer": {"algorithm": "byte-bpe", "vocab_size": vocab}})


def corpus(vocab: int) -> tuple[list[str], list[str]]:
    from engine.data.sources import load_documents
    spec = bench_spec(vocab)
    documents = load_documents(spec.data, spec.seed)
    return list(documents["train"]["text"]), list(documents["eval"]["text"])


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(mode: str, vocab: int, repeat: int) -> None:
    """One measurement in this (fresh) process; prints {"seconds", "peak_mib"}."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    from engine.jobs.tokenizer import train
    from engine.protocol import EventWriter
    from engine.rundir import RunDirectory
    from engine.runner import JobContext

    spec = bench_spec(vocab)
    texts = corpus(vocab)[0] * repeat
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDirectory.create(Path(tmp), "bench")
        ctx = JobContext(spec=spec, run=run, events=EventWriter(run.events_path))
        before = _kib("VmRSS")
        start = time.perf_counter()
        if mode == "engine":
            tokenizer = train(ctx, texts, spec.special_tokens.resolved("byte-bpe"))
            size = len(tokenizer)
        else:
            tok = Tokenizer(models.BPE())
            tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
            tok.decoder = decoders.ByteLevel()
            trainer = trainers.BpeTrainer(vocab_size=vocab, min_frequency=2, show_progress=False,
                                          special_tokens=["<|pad|>", "<|unk|>", "<|bos|>", "<|eos|>"],
                                          initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
            tok.train_from_iterator(texts, trainer=trainer)
            size = tok.get_vocab_size()
        seconds = time.perf_counter() - start
        ctx.events.close()
    print(json.dumps({"seconds": seconds, "peak_mib": (_kib("VmHWM") - before) / 1024, "vocab": size}))


def measure(mode: str, vocab: int, repeat: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--vocab", str(vocab), "--repeat", str(repeat)], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def sentencepiece_bytes_per_token(train_texts: list[str], sample: list[str], vocab: int) -> tuple[float, float]:
    import sentencepiece as spm
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "corpus.txt"
        lines.write_text("\n".join(line for t in train_texts for line in t.splitlines() if line.strip()),
                         encoding="utf-8")
        start = time.perf_counter()
        spm.SentencePieceTrainer.train(input=str(lines), model_prefix=str(Path(tmp) / "sp"), vocab_size=vocab,
                                       model_type="bpe", byte_fallback=True, normalization_rule_name="identity",
                                       num_threads=os.cpu_count() or 1, minloglevel=2)
        seconds = time.perf_counter() - start
        sp = spm.SentencePieceProcessor(model_file=str(Path(tmp) / "sp.model"))
    tokens = sum(len(ids) for ids in sp.encode(sample))
    return sum(len(t.encode("utf-8")) for t in sample) / tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=4,
                        help="train the timing runs on the corpus this many times over, so one lasts seconds")
    parser.add_argument("--child", choices=["engine", "direct"])
    args = parser.parse_args()
    if args.child:
        child(args.child, args.vocab, args.repeat)
        return

    runs: dict[str, list[dict]] = {"engine": [], "direct": []}
    for _ in range(args.rounds):
        for mode in ("engine", "direct"):
            runs[mode].append(measure(mode, args.vocab, args.repeat))
    med = {m: {k: statistics.median(r[k] for r in rs) for k in ("seconds", "peak_mib")} for m, rs in runs.items()}

    from engine.data.tokenizer_report import measure as report_figures
    from engine.data.tokenizer_training import train_tokenizer
    spec = bench_spec(args.vocab)
    train_texts, sample = corpus(args.vocab)
    ours = train_tokenizer(train_texts, spec.tokenizer, 2048, "clm")
    our_bpt = report_figures("engine", ours, sample, 0).bytes_per_token
    sp_bpt, sp_seconds = sentencepiece_bytes_per_token(train_texts, sample, args.vocab)
    print(json.dumps({
        "bench": "tokenizer_train", "vocab_size": args.vocab, "rounds": args.rounds,
        "train_documents": len(train_texts), "timing_repeat": args.repeat, "train_mb": round(sum(len(t.encode()) for t in train_texts) / 1e6, 2),
        "sample_documents": len(sample),
        "engine_s": round(med["engine"]["seconds"], 3), "direct_s": round(med["direct"]["seconds"], 3),
        "speed_ratio": round(med["direct"]["seconds"] / med["engine"]["seconds"], 3),
        "engine_peak_mib": round(med["engine"]["peak_mib"], 1), "direct_peak_mib": round(med["direct"]["peak_mib"], 1),
        "engine_bytes_per_token": round(our_bpt, 3), "sentencepiece_bytes_per_token": round(sp_bpt, 3),
        "sentencepiece_train_s": round(sp_seconds, 3), "target_speed_ratio": 0.9,
    }))


if __name__ == "__main__":
    main()
