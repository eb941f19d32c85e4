"""`studio-engine import-config`: LLaMA-Factory and Axolotl training YAMLs, written as those tools
document them (LLaMA-Factory's examples/train_lora, train_qlora, train_full; Axolotl's examples and
config reference), turned into specs that validate, with every setting listed as mapped or not and why."""

from __future__ import annotations

import json
import textwrap

import yaml

LLAMAFACTORY = {
    "sft-lora": """
        ### model
        model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
        trust_remote_code: true
        ### method
        stage: sft
        do_train: true
        finetuning_type: lora
        lora_rank: 8
        lora_target: all
        ### dataset
        dataset: identity,alpaca_en_demo
        template: llama3
        cutoff_len: 2048
        max_samples: 1000
        overwrite_cache: true
        preprocessing_num_workers: 16
        ### output
        output_dir: saves/llama3-8b/lora/sft
        logging_steps: 10
        save_steps: 500
        plot_loss: true
        overwrite_output_dir: true
        ### train
        per_device_train_batch_size: 1
        gradient_accumulation_steps: 8
        learning_rate: 1.0e-4
        num_train_epochs: 3.0
        lr_scheduler_type: cosine
        warmup_ratio: 0.1
        bf16: true
        ddp_timeout: 180000000
        ### eval
        val_size: 0.1
        per_device_eval_batch_size: 1
        eval_strategy: steps
        eval_steps: 500
        """,
    "sft-qlora": """
        model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
        quantization_bit: 4
        quantization_method: bitsandbytes
        stage: sft
        finetuning_type: lora
        lora_rank: 16
        lora_alpha: 32
        lora_target: q_proj,v_proj
        dataset: alpaca_en_demo
        dataset_dir: /data/lf
        template: chatml
        max_steps: 1000
        warmup_ratio: 0.05
        learning_rate: 2e-4
        """,
    "pt-full": """
        model_name_or_path: Qwen/Qwen2.5-0.5B
        stage: pt
        finetuning_type: full
        dataset: c4_demo
        cutoff_len: 1024
        deepspeed: examples/deepspeed/ds_z3_config.json
        """,
    "rm": """
        model_name_or_path: saves/llama3-8b/full/sft
        stage: rm
        finetuning_type: full
        dataset: dpo_en_demo
        template: llama3
        """,
    "kto": """
        model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
        stage: kto
        finetuning_type: lora
        pref_beta: 0.1
        kto_chosen_weight: 1.5
        dataset: kto_en_demo
        template: llama3
        """,
    "dpo-simpo": """
        model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
        stage: dpo
        finetuning_type: lora
        pref_beta: 2.0
        pref_loss: simpo
        simpo_gamma: 1.0
        dataset: dpo_en_demo
        """,
    "ppo": """
        model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
        reward_model: saves/llama3-8b/lora/reward
        stage: ppo
        finetuning_type: lora
        dataset: identity
        template: llama3
        max_steps: 100
        """,
}

AXOLOTL = {
    "qlora": """
        base_model: NousResearch/Llama-3.2-1B
        load_in_8bit: false
        load_in_4bit: true
        strict: false
        datasets:
          - path: teknium/GPT4-LLM-Cleaned
            type: alpaca
        dataset_prepared_path: last_run_prepared
        val_set_size: 0.1
        output_dir: ./outputs/qlora-out
        adapter: qlora
        sequence_len: 2048
        sample_packing: true
        pad_to_sequence_len: true
        lora_r: 32
        lora_alpha: 16
        lora_dropout: 0.05
        lora_target_linear: true
        wandb_project:
        gradient_accumulation_steps: 4
        micro_batch_size: 2
        num_epochs: 1
        optimizer: paged_adamw_8bit
        lr_scheduler: cosine
        learning_rate: 0.0002
        train_on_inputs: false
        bf16: auto
        tf32: false
        gradient_checkpointing: true
        logging_steps: 1
        flash_attention: true
        warmup_steps: 10
        evals_per_epoch: 4
        saves_per_epoch: 1
        weight_decay: 0.0
        special_tokens:
          pad_token: "<|end_of_text|>"
        """,
    "dpo": """
        base_model: meta-llama/Meta-Llama-3-8B-Instruct
        rl: dpo
        rl_beta: 0.1
        chat_template: llama3
        datasets:
          - path: prefs/pairs.jsonl
            ds_type: json
            type: chatml.intel
        adapter: lora
        lora_r: 16
        lora_alpha: 32
        micro_batch_size: 2
        max_steps: 200
        """,
}


def write(tmp_path, name: str, text: str):
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def imported(engine, path) -> dict:
    result = engine.run("import-config", str(path), "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def fields(result: dict) -> dict:
    return {m["field"]: m["value"] for m in result["mapped"]}


def why(result: dict, key: str) -> str:
    return next(u["why"] for u in result["unmapped"] if u["key"] == key)


def test_every_llamafactory_stage_becomes_a_valid_spec_with_each_setting_accounted_for(engine, tmp_path):
    results = {}
    for name, text in LLAMAFACTORY.items():
        path = write(tmp_path, name, text)
        results[name] = result = imported(engine, path)
        written = yaml.safe_load((tmp_path / f"{name}.atelier.yaml").read_text())
        assert written == result["spec"] and result["written"].endswith(f"{name}.atelier.yaml")
        config = yaml.safe_load(textwrap.dedent(text))
        accounted = {m["key"] for m in result["mapped"]} | {u["key"] for u in result["unmapped"]}
        assert set(config) <= accounted, (name, set(config) - accounted)
        assert engine.run("validate", result["written"]).returncode == 0, name

    sft = results["sft-lora"]
    assert sft["spec"]["kind"] == "finetune" and fields(sft)["data.sources"] == [
        "data/dataset_info.json#identity", "data/dataset_info.json#alpaca_en_demo"]
    assert fields(sft)["method.name"] == "lora" and fields(sft)["data.max_records"] == 1000
    assert fields(sft)["train.learning_rate"] == 1e-4 and fields(sft)["data.eval_fraction"] == 0.1
    assert "train.max_steps to epochs × records" in why(sft, "num_train_epochs")
    assert "the template 'llama3'" in why(sft, "template") and fields(sft)["data.chat_template"] == "auto"
    assert "own run directory" in why(sft, "output_dir")

    qlora = results["sft-qlora"]["spec"]
    assert qlora["method"] == {"name": "qlora", "quantization": {"bits": 4},
                               "lora": {"rank": 16, "alpha": 32.0, "target_modules": ["q_proj", "v_proj"]}}
    assert qlora["train"]["warmup_steps"] == 50 and qlora["data"]["chat_template"] == "chatml"
    assert qlora["data"]["sources"] == ["/data/lf/dataset_info.json#alpaca_en_demo"]

    pt = results["pt-full"]
    assert pt["spec"]["data"]["format"] == "text" and pt["spec"]["method"]["name"] == "full"
    assert "resources.strategy" in why(pt, "deepspeed")
    assert results["rm"]["spec"]["kind"] == "reward"
    kto = results["kto"]["spec"]
    assert (kto["kind"], kto["beta"], kto["desirable_weight"]) == ("kto", 0.1, 1.5)
    simpo = results["dpo-simpo"]["spec"]
    assert (simpo["loss_type"], simpo["beta"], simpo["simpo_gamma"]) == ("simpo", 2.0, 0.5)
    ppo = results["ppo"]["spec"]
    assert ppo["policy"]["path"] == "meta-llama/Meta-Llama-3-8B-Instruct" and ppo["train"]["iterations"] == 100
    assert ppo["reward_model"] == "saves/llama3-8b/lora/reward"


def test_axolotl_configs_become_valid_specs(engine, tmp_path):
    qlora = imported(engine, write(tmp_path, "qlora", AXOLOTL["qlora"]))
    spec = qlora["spec"]
    assert spec["kind"] == "finetune" and spec["data"] == {
        "sources": ["hub:teknium/GPT4-LLM-Cleaned"], "format": "alpaca", "eval_fraction": 0.1, "max_length": 2048,
        "loss_on": "responses"}
    assert spec["method"]["name"] == "qlora" and spec["method"]["lora"] == {"rank": 32, "alpha": 16.0, "dropout": 0.05}
    assert spec["train"]["batch_size"] == 2 and spec["train"]["optimizer"] == "paged_adamw_8bit"
    assert "set train.eval_every in steps" in why(qlora, "evals_per_epoch")
    assert "packing" in why(qlora, "sample_packing")
    accounted = {m["key"] for m in qlora["mapped"]} | {u["key"] for u in qlora["unmapped"]}
    assert set(yaml.safe_load(textwrap.dedent(AXOLOTL["qlora"]))) <= accounted

    dpo = imported(engine, write(tmp_path, "dpo", AXOLOTL["dpo"]))
    assert (dpo["spec"]["kind"], dpo["spec"]["loss_type"], dpo["spec"]["beta"]) == ("dpo", "sigmoid", 0.1)
    assert dpo["spec"]["data"]["sources"] == ["prefs/pairs.jsonl"]
    assert "'chatml.intel' is not run" in why(dpo, "datasets[0].type")


def test_the_report_lists_mapped_and_unmapped_settings_and_other_files_are_refused(engine, tmp_path):
    text = engine.run("import-config", str(write(tmp_path, "kto", LLAMAFACTORY["kto"])))
    assert text.returncode == 0
    assert "a LLaMA-Factory config → kind: kto" in text.stdout and "  pref_beta → beta: 0.1" in text.stdout
    assert "Not mapped (1):\n  template: the template 'llama3'" in text.stdout
    other = write(tmp_path, "other", "model: x\nepochs: 3\n")
    refused = engine.run("import-config", str(other))
    assert refused.returncode == 1 and "neither a LLaMA-Factory config" in refused.stdout + refused.stderr
    stage = write(tmp_path, "stage", "stage: grpo\nmodel_name_or_path: x\n")
    refused = engine.run("import-config", str(stage))
    assert refused.returncode == 1 and "stage 'grpo' has no Atelier kind" in refused.stdout + refused.stderr
