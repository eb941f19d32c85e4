"""Instruction data for fine-tuning: formats, loading, chat rendering with loss masks, metrics, tasks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import DataError, TokenizerError
from engine.finetune.formats import detect_format, to_messages
from engine.finetune.metrics import exact_match, generation_metrics
from engine.finetune.records import load_records
from engine.finetune.rendering import (
    IGNORE,
    add_marker_tokens,
    chat_template,
    generation_prompt,
    preview,
    prompt_ids,
    render,
    render_records,
    stop_token_ids,
    template_choice,
)
from engine.specs.chat import CHAT_PRESETS
from engine.specs.finetune import FinetuneData
from engine.tasks.generators import TASKS, WORDS, check, generate, solve

CONVERSATION = [{"role": "user", "content": "Add 347 + 58"}, {"role": "assistant", "content": "405"}]
RECORDS = {
    "alpaca": {"instruction": "Add the numbers.", "input": "347 + 58", "output": "405"},
    "sharegpt": {"conversations": [{"from": "human", "value": "Add the numbers.\n\n347 + 58"},
                                   {"from": "gpt", "value": "405"}]},
    "messages": {"messages": [{"role": "user", "content": "Add the numbers.\n\n347 + 58"},
                              {"role": "assistant", "content": "405"}]},
    "prompt_completion": {"prompt": "Add the numbers.\n\n347 + 58", "completion": "405"},
}
EXPECTED = [{"role": "user", "content": "Add the numbers.\n\n347 + 58"}, {"role": "assistant", "content": "405"}]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def data(sources: list[str] | str, **fields) -> FinetuneData:
    return FinetuneData(sources=[sources] if isinstance(sources, str) else sources, **fields)


# --- formats and loading -------------------------------------------------------------------------

@pytest.mark.parametrize("format", sorted(RECORDS))
def test_each_chat_format_is_detected_and_becomes_messages(tmp_path, format):
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS[format]] * 3)
    train, eval_, used = load_records(data(str(path), eval_fraction=0), seed=0)
    assert used == format and eval_ == []
    assert train[0]["messages"] == EXPECTED and train[0]["reference"] == "405"
    assert sorted(r["where"] for r in train) == [f"{path}, line {n}" for n in (1, 2, 3)]
    assert train[0]["fields"] == list(RECORDS[format])


def test_alpaca_without_input_and_trl_conversational_prompt_completion():
    assert to_messages({"instruction": "Say hi.", "input": "", "output": "hi"}, "alpaca", "r") == [
        {"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "hi"}]
    record = {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
              "completion": [{"role": "assistant", "content": "Hello"}]}
    assert detect_format(record, "r") == "prompt_completion"
    assert [m["role"] for m in to_messages(record, "prompt_completion", "r")] == ["system", "user", "assistant"]


def test_text_records_come_from_jsonl_and_txt_files(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"text": "The cat sat."}, {"text": "  "}])
    (tmp_path / "b.txt").write_text("A whole file is one record.", encoding="utf-8")
    train, _, used = load_records(data(str(tmp_path), eval_fraction=0), seed=0)
    assert used == "text"
    assert sorted(r["text"] for r in train) == ["A whole file is one record.", "The cat sat."]  # empty text dropped
    assert all(r["reference"] is None for r in train)


def test_json_csv_parquet_and_saved_datasets_are_read(tmp_path):
    import datasets

    rows = [RECORDS["alpaca"]] * 4
    (tmp_path / "a.json").write_text(json.dumps({"data": rows}), encoding="utf-8")
    (tmp_path / "b.csv").write_text("instruction,input,output\n" + "Add the numbers.,347 + 58,405\n" * 4,
                                    encoding="utf-8")
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "c.parquet"))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    sources = [str(tmp_path / "a.json"), str(tmp_path / "*.csv"), str(tmp_path / "c.parquet"), str(tmp_path / "saved")]
    train, eval_, used = load_records(data(sources, eval_fraction=0), seed=0)
    assert used == "alpaca" and len(train) == 16
    assert all(r["messages"] == EXPECTED for r in train)


def test_messages_read_through_arrow_lose_the_keys_other_rows_added(tmp_path):
    import datasets

    rows = [RECORDS["messages"], {"messages": [{"role": "user", "content": "Hi", "name": "ann"},
                                               {"role": "assistant", "content": "Hello"}]}]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "m.parquet"))  # Arrow gives every turn a name
    train, _, used = load_records(data(str(tmp_path / "m.parquet"), eval_fraction=0), seed=0)
    assert used == "messages"
    assert sorted(r["messages"][0].get("name", "-") for r in train) == ["-", "ann"]


def test_the_format_given_overrides_detection(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [dict(RECORDS["alpaca"], text="Plain words.")] * 2)
    assert load_records(data(str(path), eval_fraction=0), seed=0)[2] == "alpaca"
    train, _, used = load_records(data(str(path), eval_fraction=0, format="text"), seed=0)
    assert used == "text" and train[0]["text"] == "Plain words."


def test_an_unknown_format_names_the_fields_found_and_the_formats_known(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "2+2?", "answer": "4"}])
    with pytest.raises(DataError) as info:
        load_records(data(str(path)), seed=0)
    assert "d.jsonl, line 1" in info.value.message
    assert "'question', 'answer'" in info.value.message
    for name in ("alpaca", "sharegpt", "messages", "prompt_completion", "text"):
        assert name in info.value.hint


def test_a_record_missing_a_field_names_its_line_and_fields(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS["alpaca"], RECORDS["alpaca"],
                                               {"instruction": "Add.", "response": "4"}])
    with pytest.raises(DataError) as info:
        load_records(data(str(path)), seed=0)
    message = info.value.message
    assert "d.jsonl, line 3" in message and "'output'" in message and "'instruction', 'response'" in message


def test_a_format_that_does_not_fit_the_data_is_named(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS["alpaca"]])
    with pytest.raises(DataError, match=r"line 1: the sharegpt format needs 'conversations'"):
        load_records(data(str(path), format="sharegpt"), seed=0)


def test_bad_turns_are_named():
    record = {"conversations": [{"from": "human", "value": "Hi"}, {"from": "narrator", "value": "…"}]}
    with pytest.raises(DataError, match=r"r, turn 2 of 'conversations': unknown role 'narrator'"):
        to_messages(record, "sharegpt", "r")
    with pytest.raises(DataError, match="no assistant turn"):
        to_messages({"messages": [{"role": "user", "content": "Hi"}]}, "messages", "r")


# A field or message key that changes what a record means, and what the refusal names.
MEANING = {
    "label": ({**RECORDS["messages"], "label": False}, "field 'label' holds a preference label"),
    "kto": ({**RECORDS["prompt_completion"], "label": True}, "which the prompt_completion format does not read"),
    "chosen": ({**RECORDS["alpaca"], "chosen": "405", "rejected": "406"}, "field 'chosen' holds the better answer"),
    "images": ({**RECORDS["messages"], "images": ["a.png"]}, "field 'images' holds images"),
    "tools-in-alpaca": ({**RECORDS["alpaca"], "tools": [{"name": "add"}]},
                        "field 'tools' holds tool definitions, which the alpaca format does not read"),
    "unnamed-call": ({"messages": [EXPECTED[0], {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]},
                                   {"role": "tool", "content": "405"}, EXPECTED[1]]},
                     "turn 2 of 'messages': call 1 has no function name"),
    "call-not-json": ({"conversations": [{"from": "human", "value": "Hi"}, {"from": "function_call", "value": "add(1)"},
                                         {"from": "gpt", "value": "Hello"}]}, "turn 2 of 'conversations': not valid JSON"),
    "unnamed-tool": ({**RECORDS["messages"], "tools": '[{"description": "adds"}]'}, "field 'tools': tool 1 has no name"),
    "weight": ({"messages": [EXPECTED[0], {**EXPECTED[1], "weight": 0.5}]}, "'weight' is 0.5"),
    "train-flag": ({"messages": [EXPECTED[0], {**EXPECTED[1], "train": "no"}]}, "'train' is a text"),
}


@pytest.mark.parametrize("case", sorted(MEANING))
def test_a_field_that_changes_what_a_record_means_is_refused_with_its_line(tmp_path, case):
    record, named = MEANING[case]
    format = detect_format(record, "r")
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS[format], record])  # a record that fits, then the case
    with pytest.raises(DataError) as raised:
        load_records(data(str(path)), seed=0)
    assert raised.value.message.startswith(f"{path}, line 2") and named in raised.value.message, raised.value.message
    assert raised.value.hint and "known:" not in raised.value.message


def test_a_sharegpt_system_field_becomes_the_system_turn():
    record = {**RECORDS["sharegpt"], "system": "Be brief."}
    assert to_messages(record, "sharegpt", "r") == [{"role": "system", "content": "Be brief."}, *EXPECTED]


def test_harmless_extra_fields_pass(tmp_path):
    record = {**RECORDS["messages"], "id": "a1", "source": "web", "meta": {"x": 1}, "images": [], "label": None,
              "messages": [EXPECTED[0], {**EXPECTED[1], "weight": 1, "name": "bot"}]}
    train, _, _ = load_records(data(str(write_jsonl(tmp_path / "d.jsonl", [record])), eval_fraction=0), seed=0)
    assert train[0]["messages"][1]["content"] == "405"


def test_every_field_that_changes_meaning_is_documented():
    from engine.finetune.formats import MEANING_FIELDS, MESSAGE_MEANING_FIELDS, TOOL_ROLES

    docs = (Path(__file__).resolve().parents[3] / "docs" / "finetuning.md").read_text(encoding="utf-8")
    for name in [*MEANING_FIELDS, *MESSAGE_MEANING_FIELDS, *TOOL_ROLES]:
        assert f"`{name}`" in docs, name


def test_sources_in_different_formats_are_refused(tmp_path):
    a = write_jsonl(tmp_path / "a.jsonl", [RECORDS["alpaca"]])
    b = write_jsonl(tmp_path / "b.jsonl", [RECORDS["sharegpt"]])
    with pytest.raises(DataError, match="different formats"):
        load_records(data([str(a), str(b)]), seed=0)


def test_the_system_prompt_is_added_only_where_there_is_none(tmp_path):
    with_system = {"messages": [{"role": "system", "content": "Mine."}, *EXPECTED]}
    path = write_jsonl(tmp_path / "d.jsonl", [RECORDS["messages"], with_system])
    train, _, _ = load_records(data(str(path), eval_fraction=0, system_prompt="Be brief."), seed=0)
    systems = sorted(r["messages"][0]["content"] for r in train)
    assert systems == ["Be brief.", "Mine."]
    assert all(sum(m["role"] == "system" for m in r["messages"]) == 1 for r in train)


def test_eval_is_held_out_without_overlap_and_the_split_follows_the_seed(tmp_path):
    rows = [{"instruction": f"Echo {i}.", "output": str(i)} for i in range(50)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    train, eval_, _ = load_records(data(str(path), eval_fraction=0.1), seed=3)
    assert len(eval_) == 5 and len(train) == 45
    assert not {r["reference"] for r in train} & {r["reference"] for r in eval_}
    assert load_records(data(str(path), eval_fraction=0.1), seed=3)[1] == eval_
    assert load_records(data(str(path), eval_fraction=0.1), seed=4)[1] != eval_
    train, eval_, _ = load_records(data(str(path), eval_fraction=0.01, max_records=10), seed=3)
    assert len(eval_) == 1 and len(train) == 9  # at least one held out


def test_builtin_tasks_make_a_checkable_dataset():
    train, eval_, used = load_records(data("builtin:tasks", task="sort", task_examples=200), seed=1)
    assert used == "alpaca" and len(train) == 180 and len(eval_) == 20
    assert not {r["messages"][0]["content"] for r in train} & {r["messages"][0]["content"] for r in eval_}
    assert all(check("sort", r, r["reference"]) for r in train + eval_)


def test_missing_sources_and_unknown_builtins_are_clear(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_records(data(str(tmp_path / "nope.jsonl")), seed=0)
    with pytest.raises(DataError, match="builtin:recipes") as info:
        load_records(data("builtin:recipes"), seed=0)
    assert "builtin:tasks" in info.value.hint


# --- rendering -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE tokenizer trained on a few sentences, with chatml's markers added."""
    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.tokenizer import TokenizerTraining

    texts = ["Add the numbers 347 + 58 and say 405.", "Reverse the words: blue tree cat.",
             "User: hello. Assistant: hi. System: be brief."] * 20
    tok = train_tokenizer(texts, TokenizerTraining(algorithm="byte-bpe", vocab_size=320), 256)
    assert add_marker_tokens(tok, "chatml") == 2
    assert add_marker_tokens(tok, "chatml") == 0  # already there
    return tok


CHATML = CHAT_PRESETS["chatml"][0]
TWO_TURNS = {"messages": [{"role": "system", "content": "Be brief."}, *CONVERSATION,
                          {"role": "user", "content": "Reverse: blue tree"},
                          {"role": "assistant", "content": "tree blue"}], "where": "d.jsonl, line 7"}


def trained_runs(tok, rendered) -> list[str]:
    """The decoded runs of consecutive trained tokens."""
    runs, current = [], []
    for token_id, label in zip(rendered.input_ids, rendered.labels):
        if label != IGNORE:
            assert label == token_id
            current.append(token_id)
        elif current:
            runs.append(tok.decode(current))
            current = []
    return runs + ([tok.decode(current)] if current else [])


def test_only_the_answers_and_their_end_markers_are_trained(tokenizer):
    rendered = render(TWO_TURNS, tokenizer, CHATML, "responses", 512, "truncate")
    assert trained_runs(tokenizer, rendered) == ["405<|im_end|>", "tree blue<|im_end|>"]
    # The ids are the tokenization of the whole conversation, as apply_chat_template gives it
    # (after the bos this tokenizer puts before every text).
    whole = tokenizer.apply_chat_template(TWO_TURNS["messages"], chat_template=CHATML, tokenize=True,
                                          return_dict=False)
    assert rendered.input_ids == [tokenizer.bos_token_id, *whole]
    assert not rendered.truncated and not rendered.fallback


def test_a_template_without_end_markers_gets_eos_after_each_answer(tokenizer):
    rendered = render(TWO_TURNS, tokenizer, chat_template(tokenizer, "plain"), "responses", 512, "truncate")
    assert trained_runs(tokenizer, rendered) == [" 405<|eos|>", " tree blue<|eos|>"]
    assert stop_token_ids(tokenizer, chat_template(tokenizer, "plain")) == [tokenizer.eos_token_id]


def test_loss_on_all_trains_every_token(tokenizer):
    rendered = render(TWO_TURNS, tokenizer, CHATML, "all", 512, "truncate")
    assert rendered.labels == rendered.input_ids


def test_text_records_end_with_eos_and_are_trained_whole(tokenizer):
    rendered = render({"text": "The cat sat."}, tokenizer, None, "responses", 512, "truncate")
    assert tokenizer.decode(rendered.input_ids) == "<|bos|>The cat sat.<|eos|>"
    assert rendered.labels == rendered.input_ids


def test_too_long_records_are_truncated_or_dropped_and_counted(tokenizer):
    whole = render(TWO_TURNS, tokenizer, CHATML, "responses", 512, "truncate")
    cut = render(TWO_TURNS, tokenizer, CHATML, "responses", 20, "truncate")
    assert cut.truncated and cut.length_before == len(whole.input_ids) > 20
    assert cut.input_ids == whole.input_ids[:20] and cut.labels == whole.labels[:20]
    assert render(TWO_TURNS, tokenizer, CHATML, "responses", 20, "drop") is None

    short = {"messages": CONVERSATION}
    limit = render(short, tokenizer, CHATML, "responses", 512, "truncate").length_before
    kept, stats = render_records([TWO_TURNS, short], tokenizer, CHATML, "responses", limit, "drop")
    assert len(kept) == 1 and stats.dropped_too_long == 1 and stats.longest == len(whole.input_ids)
    kept, stats = render_records([TWO_TURNS, short], tokenizer, CHATML, "responses", len(whole.input_ids) - 2,
                                 "truncate")
    assert len(kept) == 2 and stats.truncated == 1 and stats.kept == 2
    first_answer = whole.labels.index(next(label for label in whole.labels if label != IGNORE))
    kept, stats = render_records([TWO_TURNS], tokenizer, CHATML, "responses", first_answer, "truncate")
    assert kept == [] and stats.dropped_no_answer == 1  # truncation cut every answer off


def test_a_tokenizer_without_chat_template_is_refused_when_the_model_template_is_asked(tokenizer):
    assert tokenizer.chat_template is None
    with pytest.raises(TokenizerError) as info:
        chat_template(tokenizer, "model")
    assert "chatml" in info.value.hint
    assert chat_template(tokenizer, "chatml") == CHATML


def test_auto_is_chatml_for_a_base_model_and_the_own_template_for_a_chat_model():
    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.tokenizer import TokenizerTraining

    assert FinetuneData(sources=["builtin:tasks"]).chat_template == "auto"  # the default
    base = train_tokenizer(["Reverse the words: blue tree cat."] * 20, TokenizerTraining(vocab_size=300), 256)
    assert base.chat_template is None  # as Pretrain saves it
    assert template_choice(base, "auto") == "chatml" and chat_template(base, "auto") == CHATML
    before = len(base)
    assert add_marker_tokens(base, "auto") == 2 and len(base) == before + 2  # ChatML's markers, added
    base.chat_template = CHAT_PRESETS["plain"][0]  # a model with a template of its own keeps it
    assert template_choice(base, "auto") == "model" and chat_template(base, "auto") == base.chat_template
    assert add_marker_tokens(base, "auto") == 0


def test_a_template_that_rewrites_earlier_turns_falls_back_to_loss_on_everything(tokenizer):
    # Marks the last message: a conversation rendered up to a turn is not the start of the whole.
    template = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}{% if loop.last %} [last]{% endif %}"
                "{{ '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'assistant:' }}{% endif %}")
    rendered = render(TWO_TURNS, tokenizer, template, "responses", 512, "truncate")
    assert rendered.fallback and rendered.labels == rendered.input_ids
    _, stats = render_records([TWO_TURNS], tokenizer, template, "responses", 512, "truncate")
    assert stats.fallback == 1


def test_a_conversation_the_template_refuses_names_the_record(tokenizer):
    template = "{{ raise_exception('Conversation roles must alternate') }}"
    with pytest.raises(DataError, match=r"d.jsonl, line 7: the chat template .*roles must alternate"):
        render(TWO_TURNS, tokenizer, template, "responses", 512, "truncate")


def test_the_generation_prompt_is_the_start_of_what_training_sees(tokenizer):
    for template in (CHATML, chat_template(tokenizer, "plain")):
        rendered = render(TWO_TURNS, tokenizer, template, "responses", 512, "truncate")
        ids = prompt_ids(TWO_TURNS, tokenizer, template)
        assert rendered.input_ids[:len(ids)] == ids
        assert rendered.labels[len(ids) - 1] == IGNORE and rendered.labels[len(ids)] != IGNORE  # the last answer
    assert generation_prompt(TWO_TURNS, tokenizer, CHATML).endswith("Reverse: blue tree<|im_end|>\n"
                                                                      "<|im_start|>assistant\n")
    assert generation_prompt({"text": "x"}, tokenizer, CHATML) is None
    im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert stop_token_ids(tokenizer, CHATML) == [tokenizer.eos_token_id, im_end]


def test_the_preview_shows_every_token_and_which_are_trained(tokenizer):
    shown = preview(TWO_TURNS, tokenizer, CHATML, "responses", 512)
    rendered = render(TWO_TURNS, tokenizer, CHATML, "responses", 512, "truncate")
    assert "".join(t["text"] for t in shown["tokens"]) == shown["text"]
    assert [t["id"] for t in shown["tokens"]] == rendered.input_ids
    assert [t["trained"] for t in shown["tokens"]] == [label != IGNORE for label in rendered.labels]
    assert "".join(t["text"] for t in shown["tokens"] if t["trained"]) == "405<|im_end|>tree blue<|im_end|>"
    cut = preview(TWO_TURNS, tokenizer, CHATML, "responses", 10)
    assert cut["truncated"] and len(cut["tokens"]) == 10 and cut["length"] == len(rendered.input_ids)


# --- metrics -------------------------------------------------------------------------------------

def test_exact_match_ignores_whitespace_and_compares_numbers_by_value():
    assert exact_match("  8728", "8728.")
    assert exact_match("8,728", "8728") and exact_match("2.50", "2.5")
    assert exact_match("tree  blue\n", "tree blue")
    assert not exact_match("8729", "8728") and not exact_match("blue tree", "tree blue")
    assert not exact_match("", "0")


def test_generation_metrics_on_known_strings():
    perfect = generation_metrics(["the cat sat on the mat", "405"], ["the cat sat on the mat", "405"])
    assert perfect == {"exact_match": 1.0, "bleu": pytest.approx(100.0), "rouge_l": pytest.approx(1.0)}
    wrong = generation_metrics(["dog runs", "12"], ["the cat sat on the mat", "405"])
    assert wrong["exact_match"] == 0.0 and wrong["bleu"] == pytest.approx(0.0) and wrong["rouge_l"] == 0.0
    half = generation_metrics(["the cat sat"], ["the cat sat on the mat"])
    assert half["rouge_l"] == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # precision 1, recall 1/2
    assert generation_metrics(["été chaud"], ["été froid"])["rouge_l"] == pytest.approx(0.5)  # not only a-z
    assert generation_metrics([], []) == {}


# --- tasks ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("task", sorted(TASKS))
def test_tasks_are_deterministic_distinct_and_correct(task):
    records = generate(task, 300, seed=7)
    assert records == generate(task, 300, seed=7) and records != generate(task, 300, seed=8)
    assert len({r["input"] for r in records}) == 300
    assert all(check(task, r, r["output"]) for r in records)
    assert all(len(r["output"]) <= 40 for r in records)  # small enough for a tiny model


def test_the_examples_show_the_task():
    addition, reverse, ordering = generate("addition", 1, 0)[0], generate("reverse", 1, 0)[0], generate("sort", 1, 0)[0]
    left, right = addition["input"].split(" + ")
    assert 10 <= int(left) <= 999 and addition["output"] == str(int(left) + int(right))
    assert reverse["output"].split() == reverse["input"].split()[::-1]
    assert ordering["output"].split() == sorted(ordering["input"].split())


@settings(max_examples=60, deadline=None)
@given(a=st.integers(0, 10**6), b=st.integers(0, 10**6), words=st.lists(st.sampled_from(WORDS), min_size=1, max_size=6))
def test_checkers_accept_the_answer_and_reject_others(a, b, words):
    question = {"input": f"{a} + {b}"}
    assert check("addition", question, f" {a + b}.")
    assert not check("addition", question, str(a + b + 1))
    sentence = " ".join(words)
    assert check("reverse", {"input": sentence}, " ".join(reversed(words)))
    assert check("sort", {"input": sentence}, " ".join(sorted(words)) + "\n")
    if sorted(words) != words:
        assert not check("sort", {"input": sentence}, sentence)


def test_checkers_read_normalised_records_too():
    record = {"messages": [{"role": "user", "content": "Add the two numbers.\n\n12 + 30"},
                           {"role": "assistant", "content": "42"}]}
    assert check("addition", record, "42") and not check("addition", record, "43")
    assert solve("reverse", "a b c") == "c b a"
    with pytest.raises(ValueError, match="unknown task"):
        generate("division", 3, 0)


def test_addition_widens_its_numbers_when_asked_for_more_examples_than_pairs():
    records = generate("addition", 500_000, seed=0)
    assert len({r["input"] for r in records}) == 500_000
