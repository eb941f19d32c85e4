"""SSH engines without a network: the ssh argv, the remote quoting, host keys, profiles, versions."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine import __version__
from engine.protocol import PROTOCOL_VERSION
from studio.client import ssh
from studio.models.engine_profiles import (
    EngineProfile,
    delete_profile,
    get_profile,
    load_profiles,
    save_profile,
)

NASTY = ["run name with spaces", "it's \"quoted\"", "$HOME", "a; touch pwned", "$(touch pwned)", "`id`",
         "back\\slash", "new\nline", "*", ""]


def test_ssh_argv_is_a_list_with_batch_mode_multiplexing_and_no_host_key_shortcut(tmp_path):
    target = ssh.SshTarget("lab box-alias", config_file=str(tmp_path / "my config"), control_dir=str(tmp_path))
    argv = target.argv("echo hi")
    assert argv[:3] == ["ssh", "-F", str(tmp_path / "my config")]
    options = [argv[i + 1] for i, a in enumerate(argv) if a == "-o"]
    assert "BatchMode=yes" in options and "ControlMaster=auto" in options
    assert f"ControlPath={tmp_path}/%C" in options
    assert any(o.startswith("ControlPersist=") for o in options)
    assert not any("StrictHostKeyChecking" in o or "UserKnownHostsFile=/dev/null" in o for o in options)
    assert argv[-3:] == ["--", "lab box-alias", "echo hi"]  # `--`: a host can never be read as an option


def test_the_remote_command_gives_the_engine_exactly_its_arguments(tmp_path):
    # The remote shell is a shell: run the command through `sh -c` as sshd does, with a Python that
    # prints its argv, and nothing may be expanded, split or executed.
    command = ssh.engine_command(sys.executable, str(tmp_path / "ws $x; 'q'"), NASTY)
    probe = command.replace("-m engine.cli", "-c 'import json, os, sys; print(json.dumps([os.environ[\"PYTHONUNBUFFERED\"], *sys.argv[1:]]))'", 1)
    done = subprocess.run(["sh", "-c", probe], capture_output=True, text=True, cwd=tmp_path, check=True)
    import json
    assert json.loads(done.stdout) == ["1", "--workspace", str(tmp_path / "ws $x; 'q'"), *NASTY]
    assert not (tmp_path / "pwned").exists()


def test_a_leading_tilde_still_means_the_remote_home_and_uploads_create_their_folder(tmp_path):
    assert ssh.quote_remote("~/atelier/.venv/bin/python") == "\"$HOME\"/atelier/.venv/bin/python"
    assert ssh.quote_remote("~/my ws") == "\"$HOME\"/'my ws'"
    assert ssh.quote_remote("a~/b") == "'a~/b'"
    target = tmp_path / "dir $x; y" / "spec 'a'.yaml"
    command = ssh.upload_then(str(target), "echo done")
    done = subprocess.run(["sh", "-c", command], input="kind: clean\n", capture_output=True, text=True, check=True)
    assert done.stdout == "done\n" and target.read_text() == "kind: clean\n"


def test_ssh_failures_become_sentences_and_a_changed_key_is_never_offered():
    unknown = "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\r\nHost key verification failed.\r\n"
    assert ssh.host_key_unknown(unknown)
    assert "known_hosts" in ssh.explain_ssh_failure(unknown, "lab")
    changed = "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.\n"
    assert not ssh.host_key_unknown(changed) and "ssh-keygen -R lab" in ssh.explain_ssh_failure(changed, "lab")
    assert "ssh-copy-id lab" in ssh.explain_ssh_failure("user@lab: Permission denied (publickey).", "lab")
    assert "Could not reach" in ssh.explain_ssh_failure("ssh: connect to host lab port 22: Connection refused", "lab")


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs ssh-keygen (OpenSSH client)")
def test_keyscan_keys_show_the_fingerprint_ssh_shows_and_are_appended_once(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k")], check=True)
    kind, blob = (tmp_path / "k.pub").read_text().split()[:2]
    output = f"# 127.0.0.1:2222 SSH-2.0-OpenSSH\n[127.0.0.1]:2222 {kind} {blob}\ngarbage line\n"
    keys = ssh.parse_keyscan(output)
    assert [k.key_type for k in keys] == [kind]
    expected = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True,
                              text=True, check=True).stdout.split()[1]
    assert keys[0].fingerprint == expected
    known = tmp_path / ".ssh" / "known_hosts"
    ssh.accept_host_keys(keys, known)
    ssh.accept_host_keys(keys, known)
    assert known.read_text() == f"[127.0.0.1]:2222 {kind} {blob}\n"
    assert known.stat().st_mode & 0o777 == 0o600


def test_ssh_dash_g_output_gives_host_port_and_the_known_hosts_file():
    resolved = ssh.parse_resolved("user me\nhostname 10.0.0.5\nport 2200\n"
                                  "userknownhostsfile /tmp/kh /tmp/kh2\n")
    assert (resolved.hostname, resolved.port, resolved.known_hosts) == ("10.0.0.5", 2200, Path("/tmp/kh"))


def test_profiles_are_stored_validated_and_hold_no_secret(store):
    lab = EngineProfile("lab box", host="gpu-lab", python="~/atelier/.venv/bin/python", workspace="~/ws")
    save_profile(store, lab)
    save_profile(store, EngineProfile("other", host="me@10.0.0.5", python="/usr/bin/python3", workspace="/data/ws"))
    assert [p.name for p in load_profiles(store)] == ["lab box", "other"]
    save_profile(store, EngineProfile("lab", host="gpu-lab2", python="python3", workspace="ws"), replace="lab box")
    assert get_profile(store, "lab").host == "gpu-lab2" and get_profile(store, "lab box") is None
    with pytest.raises(ValueError) as error:
        save_profile(store, EngineProfile("local", host="-oProxyCommand=x", python="", workspace=""))
    assert len(str(error.value).splitlines()) == 4
    delete_profile(store, "other")
    assert [p.name for p in load_profiles(store)] == ["lab"]
    assert set(store.get_setting("engine_profiles")[0]) == {"name", "kind", "host", "python", "workspace", "ssh_config",
                                                                "scheduler", "partition", "account", "time_limit",
                                                                "node_hosts", "node_ssh_config"}


def test_version_mismatches_are_explained_with_the_command_that_fixes_them():
    from studio.client.remote_engine import version_problems

    assert version_problems({"protocol_version": PROTOCOL_VERSION, "engine_version": __version__}, "lab", "py") == []
    old = version_problems({"protocol_version": PROTOCOL_VERSION - 1, "engine_version": "0.0.1"}, "lab", "~/v/bin/python")
    assert "too old" in old[0] and f"ssh lab ~/v/bin/python -m pip install -U \"atelier[engine]=={__version__}\"" in old[0]
    new = version_problems({"protocol_version": PROTOCOL_VERSION + 1, "engine_version": "9.0"}, "lab", "py")
    assert "studio is too old" in new[0]
    minor = version_problems({"protocol_version": PROTOCOL_VERSION, "engine_version": "0.0.9"}, "lab", "py")
    assert "runs work" in minor[0]
