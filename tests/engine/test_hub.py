"""`studio-engine push`: where the token comes from, which folder each --what uploads, and the sentences
for offline and token-less engines (the Hub itself is never reached: the upload is mocked)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest
import yaml

from engine import hub
from engine.rundir import RunDirectory
from tests.engine.conftest import ROOT

SECRET = "hf_secret_value_never_shown"


def fake_run(workspace: Path, kind: str, outputs: list[str], run_id: str = "run-1") -> RunDirectory:
    """A finished-looking run directory: spec.yaml and the named output folders, each with a file."""
    path = workspace / "runs" / run_id
    path.mkdir(parents=True)
    (path / "spec.yaml").write_text(yaml.safe_dump({"kind": kind, "name": "run"}))
    for name in outputs:
        (path / "output" / name).mkdir(parents=True)
        (path / "output" / name / "config.json").write_text("{}")
    return RunDirectory(path)


@pytest.fixture
def no_tokens(monkeypatch, tmp_path):
    """No token anywhere: no environment variables, no keyring, no huggingface_hub login."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring → ImportError


def fake_keyring(monkeypatch, stored: dict[tuple[str, str], str]) -> None:
    module = types.ModuleType("keyring")
    module.get_password = lambda service, user: stored.get((service, user))
    errors = types.ModuleType("keyring.errors")
    errors.KeyringError = type("KeyringError", (Exception,), {})
    module.errors = errors
    monkeypatch.setitem(sys.modules, "keyring", module)
    monkeypatch.setitem(sys.modules, "keyring.errors", errors)


def test_token_order_is_environment_then_keyring_then_hub_login(no_tokens, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: "hub-login-token")
    assert hub.resolve_token().source == "huggingface_hub's stored login"
    fake_keyring(monkeypatch, {("atelier", "huggingface"): "keyring-token"})
    assert (hub.resolve_token().value, hub.resolve_token().source) == ("keyring-token", "the system keyring")
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "old-name-token")
    assert hub.resolve_token().value == "old-name-token"
    monkeypatch.setenv("HF_TOKEN", SECRET)
    token = hub.resolve_token()
    assert token.value == SECRET and token.source == "the HF_TOKEN environment variable"
    assert SECRET not in repr(token)


def test_no_token_says_where_it_looked_and_that_keyring_is_missing(no_tokens, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(hub.PushError) as caught:
        hub.resolve_token()
    message = str(caught.value)
    assert "HF_TOKEN" in message and "keyring set atelier huggingface" in message
    assert "keyring package is not installed" in message


@pytest.mark.parametrize("kind, outputs, what, folder, repo_type", [
    ("pretrain", ["model"], None, "model", "model"),
    ("finetune", ["adapter", "merged"], None, "adapter", "model"),
    ("finetune", ["adapter", "merged"], "model", "merged", "model"),
    ("finetune", ["model"], None, "model", "model"),  # full fine-tuning: no adapter
    ("reward", ["reward_model"], None, "reward_model", "model"),
    ("ppo", ["policy"], None, "policy", "model"),
    ("grpo", ["policy"], "policy", "policy", "model"),
    ("clean", ["dataset"], None, "dataset", "dataset"),
])
def test_the_folder_and_repo_type_follow_what_and_the_run_kind(tmp_path, kind, outputs, what, folder, repo_type):
    run = fake_run(tmp_path, kind, outputs)
    chosen, chosen_type, _ = hub.choose_folder(run, what)
    assert (chosen, chosen_type) == (run.output_dir / folder, repo_type)


def test_a_missing_output_is_named(tmp_path):
    run = fake_run(tmp_path, "pretrain", [])
    with pytest.raises(hub.PushError, match=r"has no adapter to push: .*output/adapter does not exist"):
        hub.choose_folder(run, "adapter")


def test_push_uploads_the_folder_with_the_token_and_never_prints_it(tmp_path, monkeypatch, capsys):
    import huggingface_hub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    calls = {}
    monkeypatch.setattr(huggingface_hub, "create_repo",
                        lambda repo, **kw: calls.setdefault("create", (repo, kw)) and f"https://hf.co/{repo}")
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kw: calls.setdefault("upload", kw))
    run = fake_run(tmp_path, "finetune", ["adapter"])
    from engine.cli import main

    assert main(["--workspace", str(tmp_path), "push", "run-1", "--repo", "me/tiny-adapter", "--private"]) == 0
    assert calls["create"] == ("me/tiny-adapter", {"repo_type": "model", "private": True, "exist_ok": True,
                                                   "token": SECRET})
    upload = calls["upload"]
    assert (upload["repo_id"], upload["folder_path"], upload["token"]) == (
        "me/tiny-adapter", str(run.output_dir / "adapter"), SECRET)
    out = capsys.readouterr()
    assert "https://hf.co/me/tiny-adapter" in out.out and "HF_TOKEN environment variable" in out.err
    assert SECRET not in out.out + out.err
    assert not any(SECRET in p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file())


def push_process(workspace: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "push", "run-1", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)


def clean_env(tmp_path: Path, **extra: str) -> dict:
    import os

    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE")}
    return {**env, "HF_HOME": str(tmp_path / "hf-home"), "PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
            **extra}


def test_offline_push_says_nothing_was_uploaded(tmp_path):
    fake_run(tmp_path, "pretrain", ["model"])
    result = push_process(tmp_path, clean_env(tmp_path, HF_HUB_OFFLINE="1", HF_TOKEN=SECRET), "--repo", "me/m")
    assert result.returncode == 1
    assert "not reachable" in result.stderr and "HF_HUB_OFFLINE" in result.stderr and "nothing was uploaded" in result.stderr
    assert SECRET not in result.stdout + result.stderr


def test_push_without_a_token_says_how_to_give_one(tmp_path):
    fake_run(tmp_path, "pretrain", ["model"])
    result = push_process(tmp_path, clean_env(tmp_path), "--repo", "me/m")
    assert result.returncode == 1
    assert "No Hugging Face token found" in result.stderr and "HF_TOKEN" in result.stderr
    assert "Traceback" not in result.stderr


def test_push_refuses_links_and_special_files_before_anything_is_sent(tmp_path):
    import os

    secret = tmp_path / "secret-key"
    secret.write_text("-----BEGIN PRIVATE KEY-----")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(tmp_path, HF_HUB_OFFLINE="1", HF_TOKEN=SECRET)

    def run_with(setup, run_id: str) -> subprocess.CompletedProcess:
        run = fake_run(tmp_path / run_id, "pretrain", ["model"])
        setup(run.output_dir / "model")
        return push_process(tmp_path / run_id, env, "--repo", "me/m")

    cases = {
        "file-link": lambda model: (model / "tokenizer.json").symlink_to(secret),
        "folder-link": lambda model: (model / "extra").symlink_to(elsewhere, target_is_directory=True),
        "nested-link": lambda model: ((model / "sub").mkdir(), (model / "sub" / "weights").symlink_to(secret)),
        "fifo": lambda model: os.mkfifo(model / "pipe"),
    }
    for run_id, setup in cases.items():
        result = run_with(setup, run_id)
        assert result.returncode == 1, (run_id, result.stderr)
        assert "push uploads only the run's own files" in result.stderr and "Traceback" not in result.stderr
        assert "not reachable" not in result.stderr  # refused before the network is even considered
    assert str(secret) in run_with(lambda model: (model / "k").symlink_to(secret), "names-target").stderr

    run = fake_run(tmp_path / "whole-link", "pretrain", [])
    (run.output_dir).mkdir(parents=True, exist_ok=True)
    (run.output_dir / "model").symlink_to(elsewhere, target_is_directory=True)
    (elsewhere / "config.json").write_text("{}")
    result = push_process(tmp_path / "whole-link", env, "--repo", "me/m")
    assert result.returncode == 1 and "is a symbolic link" in result.stderr, result.stderr
