"""The tokenizer job through the real engine process: each algorithm, the saved folder, the report,
comparisons, exact byte-level round trips, and bad input.

The module's runs are started ahead of their tests by a RunPool, side by side (each is mostly
interpreter start-up); each test checks its own run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from transformers import AutoTokenizer

from tests.engine.conftest import Engine, RunPool, pooled, start_pooled

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a parser."},
                {"role": "assistant", "content": "The decoder."}]
CUSTOM = "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}{{ eos_token }}{% endfor %}"
# algorithm -> (chat settings, the marker the rendered conversation must hold)
CASES = {
    "byte-bpe": ({"template": "chatml"}, "<|im_start|>assistant\nThe decoder.<|im_end|>"),
    "bpe": ({"template": "llama3"}, "<|start_header_id|>user<|end_header_id|>\n\nName a parser.<|eot_id|>"),
    "unigram": ({"template": "plain"}, "User: Name a parser.\n"),
    "wordpiece": ({"template": "custom", "custom_template": CUSTOM}, "<<assistant>>The decoder.[SEP]"),
}


def tokenizer_spec(corpus, **sections) -> dict:
    spec = {"kind": "tokenizer", "name": "tok",
            "data": {"sources": [str(corpus)], "eval_fraction": 0.1},
            "tokenizer": {"algorithm": "byte-bpe", "vocab_size": 600},
            "report": {"sample_documents": 100}}
    spec.update(sections)
    return spec


def start_run(make_spec):
    """A RunPool job: write the inputs and the spec that `make_spec(workspace)` gives, then run it."""
    def job(engine: Engine):
        return engine, engine.run("run", str(engine.write_spec(make_spec(engine.workspace))), "--json")
    return job


def run_ok(engine, result) -> tuple[Path, list[dict]]:
    assert result.returncode == 0, result.stderr[-3000:]
    events = engine.stdout_events(result.stdout)
    assert events[-1]["status"] == "completed"
    return engine.only_run(), events


def failure(engine, result) -> dict:
    assert result.returncode == 1, result.stderr[-2000:]
    events = engine.stdout_events(result.stdout)
    assert events[-1]["type"] == "finished" and events[-1]["status"] == "failed"
    assert events[-1]["error"]["message"] and events[-1]["error"]["hint"]
    return events[-1]["error"]


def algorithm_spec(corpus, algorithm: str) -> dict:
    return tokenizer_spec(corpus, tokenizer={"algorithm": algorithm, "vocab_size": 600}, chat=CASES[algorithm][0],
                          pre_tokenization={"split_digits": True})


def write_comparison_tokenizer(corpus_file: Path, engine: Engine) -> None:
    """A saved byte-bpe tokenizer of another size, for the byte-level run to compare with."""
    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.tokenizer import TokenizerTraining

    texts = [json.loads(line)["text"] for line in corpus_file.read_text().splitlines()]
    other = engine.workspace / "small-bpe"
    train_tokenizer(texts, TokenizerTraining(algorithm="byte-bpe", vocab_size=300), 128, "clm").save_pretrained(other)


def empty_corpus_spec(workspace: Path) -> dict:
    path = workspace / "empty.jsonl"
    path.write_text('{"text": ""}\n{"text": "  "}\n')
    return tokenizer_spec(path)


BAD_TEMPLATE = "{% for m in messages %}{{ m['content'] }}{% endfor %}{{ raise_exception('no system role') }}"


def many_scripts_spec(workspace: Path) -> dict:
    path = workspace / "many-scripts.txt"
    path.write_text("".join(chr(c) for c in range(0x4E00, 0x4E00 + 400)) + " Ωμέγα ", encoding="utf-8")
    return tokenizer_spec(path, tokenizer={"algorithm": "wordpiece", "vocab_size": 300},
                          data={"sources": [str(path)], "eval_fraction": 0.0})


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory, corpus_file) -> RunPool:
    pool = RunPool(tmp_path_factory.mktemp("tokenizer-runs"))
    start_pooled(request, pool, corpus=corpus_file)
    yield pool
    pool.close()


def byte_level_job(corpus_file: Path):
    return start_run(lambda workspace: tokenizer_spec(
        corpus_file, report={"compare_with": [str(workspace / "small-bpe")], "sample_documents": 100}))


BYTE_LEVEL = pooled("byte-level", lambda f: byte_level_job(f.corpus),
                    prepare=lambda f: lambda engine: write_comparison_tokenizer(f.corpus, engine))


@pytest.mark.slow
@pooled(lambda f, algorithm: algorithm,
        lambda f, algorithm: start_run(lambda workspace: algorithm_spec(f.corpus, algorithm)))
@pytest.mark.parametrize("algorithm", list(CASES))
def test_each_algorithm_saves_a_tokenizer_with_specials_chat_template_and_report(runs, algorithm):
    _, marker = CASES[algorithm]
    run_dir, events = run_ok(*runs.result(algorithm))

    folder = run_dir / "output" / "tokenizer"
    artifacts = {e["kind"]: e for e in events if e["type"] == "artifact"}
    assert artifacts["tokenizer"]["path"] == str(folder) and artifacts["report"]["path"].endswith("report.json")
    tok = AutoTokenizer.from_pretrained(folder)
    assert len(tok) <= 600
    if algorithm == "wordpiece":
        assert (tok.cls_token, tok.sep_token, tok.mask_token, tok.pad_token) == ("[CLS]", "[SEP]", "[MASK]", "[PAD]")
    else:
        assert (tok.bos_token, tok.eos_token, tok.pad_token, tok.unk_token) == \
            ("<|bos|>", "<|eos|>", "<|pad|>", "<|unk|>")
    assert tok.chat_template
    rendered = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert marker in rendered
    ids = tok.apply_chat_template(CONVERSATION, tokenize=True)
    ids = ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids
    if algorithm in ("byte-bpe", "bpe"):  # unigram and wordpiece may lack characters the corpus never had
        assert tok.unk_token_id not in ids
    for marker_token in {"byte-bpe": ["<|im_start|>", "<|im_end|>"], "bpe": ["<|eot_id|>"]}.get(algorithm, []):
        assert tok.convert_tokens_to_ids(marker_token) in ids  # chat markers are single special tokens
    pieces = [p for p, _ in tok.backend_tokenizer.pre_tokenizer.pre_tokenize_str("x 2024")]
    assert [p for p in pieces if p.isdigit()] == ["2", "0", "2", "4"]  # split_digits

    figures = json.loads((run_dir / "output" / "report.json").read_text())["tokenizers"][0]
    assert figures["bytes_per_token"] > 1 and figures["chars_per_token"] > 1
    assert 0 < figures["vocab_used"] <= 1 and 0 <= figures["unk_rate"] < 0.01
    assert 0.5 < figures["tokens_per_word"] < 5 and figures["longest_tokens"]
    metric = next(e for e in events if e["type"] == "metric")
    assert metric["split"] == "eval" and metric["values"]["bytes_per_token"] == figures["bytes_per_token"]


@pytest.fixture(scope="module")
def byte_level_run(runs):
    """One byte-bpe run (NFC off, the default) compared with a saved byte-bpe tokenizer of another size."""
    engine, result = runs.result("byte-level")
    run_dir, events = run_ok(engine, result)
    return run_dir, events, str(engine.workspace / "small-bpe")


@pytest.mark.slow
@BYTE_LEVEL
def test_report_table_lists_the_comparison_tokenizer(byte_level_run):
    run_dir, events, other = byte_level_run
    report = json.loads((run_dir / "output" / "report.json").read_text())
    names = [row["name"] for row in report["tokenizers"]]
    assert names == ["tok", other]
    mine, theirs = report["tokenizers"]
    assert theirs["vocab_size"] == 300 and theirs["bytes_per_token"] < mine["bytes_per_token"]  # a smaller vocabulary
    assert other in report["table"] and "bytes/token" in report["table"]
    assert report["sample"]["documents"] == 100
    assert (run_dir / "output" / "report.md").read_text().strip() == report["table"]


@pytest.mark.slow
@BYTE_LEVEL
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_byte_level_tokenizer_round_trips_any_unicode(byte_level_run, text):
    tok = _loaded(byte_level_run[0])
    # split_special_tokens: text that happens to spell a special token ("<|unk|>") is text here.
    ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert tok.unk_token_id not in ids
    assert tok.decode(ids) == text


_CACHE: dict = {}


def _loaded(run_dir: Path):
    if run_dir not in _CACHE:
        _CACHE[run_dir] = AutoTokenizer.from_pretrained(run_dir / "output" / "tokenizer")
    return _CACHE[run_dir]


@pytest.mark.slow
@pooled("empty", lambda f: start_run(empty_corpus_spec))
def test_empty_corpus_fails_naming_the_field(runs):
    error = failure(*runs.result("empty"))
    assert "empty" in error["message"] and "data.text_field" in error["hint"]


@pytest.mark.slow
@pooled("bad-template", lambda f: start_run(lambda workspace: tokenizer_spec(
    f.corpus, chat={"template": "custom", "custom_template": BAD_TEMPLATE})))
def test_chat_template_that_does_not_render_fails_before_training(runs):
    engine, result = runs.result("bad-template")
    error = failure(engine, result)
    assert "chat.custom_template" in error["message"] and "no system role" in error["message"]
    events = engine.events(engine.only_run())
    assert not any(e["type"] == "progress" and e["stage"] == "tokenizer" for e in events)
    assert not (engine.only_run() / "output" / "tokenizer").exists()


@pytest.mark.slow
@pooled("small-vocab", lambda f: start_run(many_scripts_spec))
def test_vocabulary_smaller_than_the_corpus_alphabet_fails_naming_the_field(runs):
    error = failure(*runs.result("small-vocab"))
    assert "tokenizer.vocab_size" in error["message"] and "alphabet" in error["message"]


@pytest.mark.slow
@pooled("missing-comparison", lambda f: start_run(lambda workspace: tokenizer_spec(
    f.corpus, report={"compare_with": [str(workspace / "nope")]})))
def test_missing_comparison_tokenizer_fails_naming_the_field(runs):
    error = failure(*runs.result("missing-comparison"))
    assert "report.compare_with[0]" in error["message"] and "nope" in error["message"]


@pytest.mark.parametrize("sections, field", [
    ({"tokenizer": {"algorithm": "byte-bpe", "vocab_size": 260}}, "tokenizer.vocab_size"),
    ({"tokenizer": {"algorithm": "bpe", "vocab_size": 256}}, "tokenizer.vocab_size"),
    ({"chat": {"template": "custom"}}, "chat.custom_template"),
    ({"chat": {"template": "chatml", "custom_template": "{{ x }}"}}, "chat.custom_template"),
    ({"tokenizer": {"algorithm": "unigram"}, "special_tokens": {"unk": ""}}, "special_tokens.unk"),
    ({"normalization": {"unicode": "nfd"}}, "normalization.unicode"),
])
def test_invalid_tokenizer_spec_exits_2_naming_the_field(engine, corpus_file, sections, field):
    result = engine.run("run", str(engine.write_spec(tokenizer_spec(corpus_file, **sections))))
    assert result.returncode == 2
    assert f"{field}: " in result.stderr  # reported at the field itself, so the studio can mark it
    assert not (engine.workspace / "runs").exists()
