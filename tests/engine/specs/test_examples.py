import pytest

from engine.demo import demo_clean_spec_data, demo_spec_data
from engine.specs import load_spec, parse_spec
from tests.engine.conftest import ROOT

SPECS = sorted((ROOT / "resources" / "specs").glob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_spec_validates(path):
    assert load_spec(path).kind


def test_there_is_an_example_per_kind_so_far():
    assert {load_spec(p).kind for p in SPECS} >= {"clean", "pretrain", "tokenizer", "finetune", "generate", "reward",
                                                 "ppo", "dpo", "grpo"}


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


def test_demo_rlhf_specs_validate_and_chain():
    from engine.demo import demo_candidates_spec_data, demo_grpo_spec_data, demo_ppo_spec_data, demo_reward_spec_data
    sft = "runs/x/output/model"
    candidates = parse_spec(demo_candidates_spec_data(sft))
    reward = parse_spec(demo_reward_spec_data(sft, "demo-labels"))
    ppo = parse_spec(demo_ppo_spec_data(sft, "demo-reverse-reward-1"))
    grpo = parse_spec(demo_grpo_spec_data(sft))
    assert candidates.prompts.task == ppo.prompts.task == grpo.prompts.task == "reverse"
    # Labels, PPO, GRPO and the evaluation use prompts the fine-tuning run (task seed 0) never saw.
    assert len({candidates.prompts.task_seed, ppo.prompts.task_seed, grpo.prompts.task_seed,
                ppo.evaluation.seed, 0}) == 5
    assert reward.data.sources == ["queue:demo-labels"] and ppo.reward_model == "demo-reverse-reward-1"
    assert grpo.reward.source == "checker" and ppo.evaluation == grpo.evaluation
