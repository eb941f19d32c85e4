from pathlib import Path

import pytest

from engine.demo import demo_clean_spec_data, demo_spec_data
from engine.specs import load_spec, parse_spec

SPECS = sorted((Path(__file__).resolve().parents[2] / "resources" / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_validates(path):
    assert load_spec(path).kind


def test_there_is_an_example_per_kind_so_far():
    assert {load_spec(p).kind for p in SPECS} >= {"clean", "pretrain", "tokenizer", "finetune"}


def test_demo_spec_validates():
    spec = parse_spec(demo_spec_data())
    assert spec.data.sources == ["builtin:python-docs"] and spec.train.max_steps == 300


def test_demo_clean_spec_validates():
    spec = parse_spec(demo_clean_spec_data())
    assert spec.input.sources == ["builtin:python-docs"] and spec.near_dedup.enabled


def test_demo_finetune_spec_validates():
    from engine.demo import demo_finetune_spec_data
    spec = parse_spec(demo_finetune_spec_data("runs/x/output/model"))
    assert spec.data.task == "reverse" and spec.evaluation.before_training
