"""Prompt variants: presets, Jinja rendering in the sandbox, few-shot picking, answer extraction,
the chat-template view, and the evaluate job's data checks — all without a model or an engine
process."""

from __future__ import annotations

import json

import pytest

from engine.errors import DataError
from engine.playground.templates import (
    COT_INSTRUCTION,
    TemplateError,
    compile_variant,
    extract_answer,
    pick_examples,
    preset_template,
    render,
    render_prompt,
)
from engine.specs import SpecError, parse_spec
from engine.specs.evaluate import PromptVariant

ROW = {"id": "r1", "input": "cat red sun", "expected": "sun red cat", "topic": "words"}


def variant(**fields) -> PromptVariant:
    return PromptVariant(**({"name": "v"} | fields))


def test_zero_shot_is_the_input_and_a_template_reads_any_field():
    assert render_prompt(variant(), ROW).text == "cat red sun"
    prompt = render_prompt(variant(template="About {{ topic }}:\n{{ input | upper }}", system="Be brief ({{ id }})."),
                           ROW)
    assert prompt.text == "About words:\nCAT RED SUN"
    assert prompt.system == "Be brief (r1)."
    assert prompt.messages == [{"role": "system", "content": "Be brief (r1)."},
                               {"role": "user", "content": "About words:\nCAT RED SUN"}]
    odd = {"the question": "Why?", "if": "x"}  # not identifiers, or Jinja words: reached through `row`
    assert render_prompt(variant(), odd, input_field="the question").text == "Why?"
    assert render_prompt(variant(), odd, input_field="if").text == "x"


def test_few_shot_puts_input_output_pairs_before_the_input():
    shots = [{"q": "a b", "a": "b a"}, {"q": "x y z", "a": "z y x"}]
    prompt = render_prompt(variant(preset="few-shot"), {"q": "one two", "a": "two one"}, examples=shots,
                           input_field="q", expected_field="a")
    assert prompt.text == ("Input: a b\nOutput: b a\n\nInput: x y z\nOutput: z y x\n\n"
                           "Input: one two\nOutput:")
    assert preset_template("few-shot", "q", "a").startswith("{% for example in examples %}Input: {{ example['q'] }}")


def test_few_shot_examples_are_picked_reproducibly_per_row_and_never_the_row_itself():
    pool = [{"input": f"w{i}", "expected": f"e{i}"} for i in range(10)]
    picked = pick_examples(pool, 3, seed=5, row_index=2, row_input="w2")
    assert picked == pick_examples(pool, 3, seed=5, row_index=2, row_input="w2")
    assert len(picked) == 3 and all(p["input"] != "w2" for p in picked)
    rows = {tuple(p["input"] for p in pick_examples(pool, 3, seed=5, row_index=i, row_input=f"w{i}"))
            for i in range(10)}
    assert len(rows) > 1  # rows differ
    assert len(pick_examples(pool[:2], 3, seed=0, row_index=0, row_input="w0")) == 1  # fewer available: fewer shown


def test_chain_of_thought_asks_for_steps_and_extracts_the_final_answer():
    assert render_prompt(variant(preset="chain-of-thought"), ROW).text == f"cat red sun\n\n{COT_INSTRUCTION}"
    said = "First the last word: sun.\nThen red, then cat.\nAnswer: sun red cat.\n"
    assert extract_answer(said, "chain-of-thought") == "sun red cat"
    assert extract_answer("answer: 3\nWait, no.\nANSWER:  4", "chain-of-thought") == "4"  # the last one counts
    assert extract_answer("I think\nit is 12\n\n", "chain-of-thought") == "it is 12"  # no Answer: the last line
    assert extract_answer("", "chain-of-thought") == ""
    assert extract_answer("  sun red cat. \n", "zero-shot") == "sun red cat."  # others: the whole answer
    assert extract_answer("The total is 12, or 13.", "zero-shot", r"(\d+)") == "13"
    assert extract_answer("The total is 12.", "zero-shot", r"\d+") == "12"  # no group: the whole match
    assert extract_answer("no number", "chain-of-thought", r"(\d+)") == "no number"  # no match: the preset's fallback


def test_an_undefined_variable_names_the_variable_the_variant_and_the_row():
    compiled = compile_variant(variant(name="asks", template="Q: {{ question }}"), index=2)
    with pytest.raises(TemplateError) as info:
        render(compiled, ROW, "data.jsonl, line 7")
    message = info.value.message
    assert message.startswith("data.jsonl, line 7: the template of variant 'asks' (variants[2].template)")
    assert "'question'" in message and "'input', 'expected'" in message and "every row" in info.value.hint

    few = compile_variant(variant(name="few", preset="few-shot"), index=0)
    with pytest.raises(TemplateError, match="uses the variable 'expected'"):
        render(few, ROW, "data.jsonl, line 1", [{"input": "a"}])
    unsafe = compile_variant(variant(template="{{ input.__class__ }}"))
    with pytest.raises(TemplateError, match="unsafe"):
        render(unsafe, ROW, "data.jsonl, line 1")


def test_the_spec_rejects_bad_templates_and_patterns_with_their_field():
    base = {"kind": "evaluate", "models": [{"path": "m"}], "data": {"path": "d.jsonl"}}
    cases = {
        "variants.0.template": {"variants": [{"name": "a", "template": "{{ input }"}]},
        "variants.0.system": {"variants": [{"name": "a", "system": "{% if x %}"}]},
        "variants.0.regex": {"variants": [{"name": "a", "regex": "(\\d+"}], "scoring": {"metrics": ["regex_match"]}},
        "variants.0.answer_pattern": {"variants": [{"name": "a", "answer_pattern": "[a-"}]},
        "scoring.metrics": {"scoring": {"metrics": ["regex_match"]}},
        "variants.0": {"variants": [{"name": "a", "examples": {"k": 2}}]},
    }
    for field, change in cases.items():
        with pytest.raises(SpecError) as info:
            parse_spec(base | change)
        assert [p.field for p in info.value.problems] == [field], (field, str(info.value))
    problem = pytest.raises(SpecError, parse_spec, base | cases["variants.0.template"]).value.problems[0]
    assert "Jinja syntax error on line 1" in problem.message
    with pytest.raises(SpecError, match="the name 'a' is given to several variants"):
        parse_spec(base | {"variants": [{"name": "a"}, {"name": "a", "preset": "few-shot"}]})


def test_the_chat_template_view_shows_what_the_model_reads():
    from engine.data.tokenizer_training import train_tokenizer
    from engine.specs.chat import CHAT_PRESETS
    from engine.specs.tokenizer import TokenizerTraining

    tokenizer = train_tokenizer([f"cat red sun {i} moon tree" for i in range(50)],
                                TokenizerTraining(algorithm="byte-bpe", vocab_size=300, min_frequency=1), 256,
                                extra_specials=["<|im_start|>", "<|im_end|>"])
    plain = render_prompt(variant(system="Be brief."), ROW, tokenizer=tokenizer)
    assert plain.chat_template is None and plain.model_input.endswith("Be brief.\n\ncat red sun")
    tokenizer.chat_template = CHAT_PRESETS["chatml"][0]
    chat = render_prompt(variant(system="Be brief."), ROW, tokenizer=tokenizer)
    assert chat.text == "cat red sun" and chat.chat_template == CHAT_PRESETS["chatml"][0]
    assert chat.model_input.endswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\ncat red sun"
                                     "<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(chat.token_ids, skip_special_tokens=False) == chat.model_input
    assert render_prompt(variant(), ROW, tokenizer=tokenizer, chat_template="none").chat_template is None


def test_data_problems_name_the_file_the_line_and_the_field(tmp_path):
    from engine.playground.data import prepare

    def spec(path, **data):
        metrics = ["exact_match", "regex_match"] if "regex_field" in data else ["exact_match"]
        return parse_spec({"kind": "evaluate", "models": [{"path": "m"}], "data": {"path": str(path)} | data,
                           "variants": [{"name": "few", "preset": "few-shot",
                                         "examples": {"source": str(tmp_path / "shots.jsonl")}}],
                           "scoring": {"metrics": metrics}})

    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(ROW) + "\n")
    (tmp_path / "shots.jsonl").write_text(json.dumps({"input": "a b"}) + "\n")
    no_expected = tmp_path / "rows.jsonl"
    no_expected.write_text(json.dumps(ROW) + "\n\n" + json.dumps({"input": "x", "answer": "y"}) + "\n")
    rows_csv = tmp_path / "rows.csv"
    rows_csv.write_text("input,expected,pattern\na,b,(\nc,,x\n")
    cases = [
        (spec(tmp_path / "absent.jsonl"), [str(tmp_path / "absent.jsonl"), "(data.path) does not exist"]),
        (spec(no_expected), [f"{no_expected}, line 3", "no field 'expected' (data.expected_field)",
                             "'input', 'answer'"]),
        (spec(rows_csv, regex_field="pattern", limit=1), [f"{rows_csv}, line 2", "'pattern' (data.regex_field)",
                                                          "not a valid regular expression"]),
        (spec(rows_csv), [f"{rows_csv}, line 3", "field 'expected' (data.expected_field) is empty"]),
        (spec(good), [f"{tmp_path / 'shots.jsonl'}, line 1", "few-shot example has no field 'expected'",
                      "variants[0].examples.source"]),
    ]
    for evaluate_spec, parts in cases:
        with pytest.raises(DataError) as info:
            prepare(evaluate_spec)
        text = info.value.message + " " + info.value.hint
        assert info.value.hint and all(part in text for part in parts), text
