"""Copying a remote run's inputs without a network: content hashes, which spec values are local inputs,
the spec rewritten to the remote copies, the remote commands run through `sh` (quoting, skip-if-present,
the move out of staging) and the rsync/scp argv."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from studio.client import ssh
from studio.client.sync import (
    HOME_STAGING,
    Upload,
    content_hash,
    copy_argv,
    finalize_command,
    listing_command,
    local_inputs,
    parse_listing,
    parse_probe,
    plan_uploads,
    prepare_command,
    probe_command,
    pull_prepare_command,
    rewrite_spec,
    staging_dirs,
)

WEIRD = "corpus; $HOME 'x' \"q\" `id`.jsonl"


def _sh(command: str, cwd: Path, home: Path) -> str:
    """Run a remote command as sshd would: through `sh -c`, in the (fake) remote home."""
    done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, cwd=cwd, check=True,
                          env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    return done.stdout


def test_a_file_hashes_to_the_sha256_of_its_bytes_and_a_folder_to_its_sorted_relative_paths_and_hashes(tmp_path):
    (tmp_path / "f.txt").write_bytes(b"hello")
    assert content_hash(tmp_path / "f.txt") == hashlib.sha256(b"hello").hexdigest()
    one, two = tmp_path / "one", tmp_path / "two"
    for folder, order in ((one, ("b/x.bin", "a.txt")), (two, ("a.txt", "b/x.bin"))):
        for name in order:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(name.encode())
    assert content_hash(one) == content_hash(two)  # the order files were written in does not matter
    (two / "b" / "x.bin").write_bytes(b"changed")
    assert content_hash(one) != content_hash(two)
    (two / "b" / "x.bin").write_bytes(b"b/x.bin")
    (two / "b" / "x.bin").rename(two / "b" / "y.bin")
    assert content_hash(one) != content_hash(two)  # a renamed file is another folder


def test_only_existing_absolute_paths_under_path_fields_are_inputs_and_the_spec_is_rewritten_to_their_copies(tmp_path):
    corpus = tmp_path / WEIRD
    corpus.write_text('{"text": "a"}\n')
    model = tmp_path / "my model"
    (model / "sub").mkdir(parents=True)
    (model / "sub" / "config.json").write_text("{}")
    spec = {"kind": "finetune", "name": "ft", "model": {"path": str(model)},
            "data": {"sources": [str(corpus), "tatsu-lab/alpaca", str(tmp_path / "missing.jsonl"), str(corpus)],
                     "system_prompt": str(corpus)},  # not a path field: never touched
            "train": {"sample_prompts": ["/"]}}
    assert local_inputs(spec) == [str(model), str(corpus)]  # in the spec's order, each once
    uploads = plan_uploads(spec)
    assert [(u.name, u.digest) for u in uploads] == [("my model", content_hash(model)), (WEIRD, content_hash(corpus))]
    remote = {u.original: u.remote_path("/srv/ws") for u in uploads}
    assert remote[str(corpus)] == f"/srv/ws/inputs/{uploads[1].digest[:16]}/{WEIRD}"
    sent = rewrite_spec(spec, remote)
    assert sent["data"]["sources"] == [remote[str(corpus)], "tatsu-lab/alpaca", str(tmp_path / "missing.jsonl"),
                                       remote[str(corpus)]]
    assert sent["model"]["path"] == remote[str(model)]
    assert sent["data"]["system_prompt"] == str(corpus) and sent["train"] == spec["train"]
    assert spec["data"]["sources"][0] == str(corpus)  # the local spec is left as it was


def _upload(tmp_path: Path, name: str, text: str) -> Upload:
    path = tmp_path / "local" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return plan_uploads({"sources": [str(path)]})[0]


def test_the_probe_creates_the_workspace_and_reports_what_is_already_there(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    uploads = [_upload(tmp_path, WEIRD, "a"), _upload(tmp_path, "b.jsonl", "b")]
    workspace = "~/ws $x; 'q'"
    out = _sh(probe_command(workspace, uploads), home, home)
    probe = parse_probe(out, uploads)
    absolute = str(home / "ws $x; 'q'")
    assert probe.workspace == absolute and probe.present == [False, False]
    assert probe.rsync == (shutil.which("rsync", path="/usr/bin:/bin") is not None)
    # Present content is not copied again: the probe sees it.
    target = Path(uploads[0].remote_path(absolute))
    target.parent.mkdir(parents=True)
    target.write_text("a")
    assert parse_probe(_sh(probe_command(workspace, uploads), home, home), uploads).present == [True, False]
    assert not list(tmp_path.rglob("pwned"))


def test_staged_copies_move_into_place_from_the_workspace_or_from_home_when_its_path_is_unsafe(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    uploads = [_upload(tmp_path, WEIRD, "a")]
    safe_ws = str(tmp_path / "ws")
    unsafe_ws = str(tmp_path / "ws two $x")
    assert staging_dirs(safe_ws) == (f"{safe_ws}/inputs/.incoming",) * 2
    assert staging_dirs(unsafe_ws) == (HOME_STAGING, f"~/{HOME_STAGING}")
    for workspace in (safe_ws, unsafe_ws):
        copy_to, shell_path = staging_dirs(workspace)
        _sh(prepare_command(shell_path, uploads), home, home)
        staged = (home / copy_to if not copy_to.startswith("/") else Path(copy_to)) / uploads[0].key
        assert staged.is_dir()
        shutil.copy(uploads[0].local, staged / uploads[0].name)  # what rsync/scp does
        _sh(finalize_command(workspace, shell_path, uploads), home, home)
        assert Path(uploads[0].remote_path(workspace)).read_text() == "a"
        assert not staged.exists() and not (home / HOME_STAGING).exists()


def test_rsync_and_scp_get_an_argv_list_through_the_same_ssh_options(tmp_path):
    target = ssh.SshTarget("lab", config_file=str(tmp_path / "cfg"), control_dir=str(tmp_path))
    local = str(tmp_path / WEIRD)
    rsync = copy_argv(target, local, "lab:.atelier-incoming/abc/", "rsync", recursive=False)
    assert rsync[:2] == ["rsync", "-aL"] and rsync[-3:] == ["--", local, "lab:.atelier-incoming/abc/"]
    assert "BatchMode=yes" in rsync[rsync.index("-e") + 1] and f"ControlPath={tmp_path}/%C" in rsync[rsync.index("-e") + 1]
    scp = copy_argv(target, local, "lab:x/", "scp", recursive=True)
    assert scp[0] == "scp" and "BatchMode=yes" in scp and f"ControlPath={tmp_path}/%C" in scp and "-r" in scp
    assert scp[-3:] == ["--", local, "lab:x/"]


def test_outputs_are_listed_as_json_and_an_unsafe_path_is_pulled_through_a_symlink(tmp_path):
    home = tmp_path / "home"
    output = tmp_path / "run $x 'q'" / "output"
    (output / "model").mkdir(parents=True)
    (output / "model" / "w.bin").write_bytes(b"1234")
    (output / "report.html").write_text("<p>")
    home.mkdir()
    import sys
    entries = parse_listing(_sh(listing_command(sys.executable, str(output)), home, home))
    assert [(e.name, e.is_dir, e.bytes) for e in entries] == [("model", True, 4), ("report.html", False, 3)]
    assert parse_listing(_sh(listing_command(sys.executable, str(tmp_path / "none")), home, home)) == []
    command, source = pull_prepare_command(str(output / "model"), "tok")
    lines = _sh(command, home, home).split()
    assert lines[1] == "dir" and source == ".atelier-outgoing/tok"
    assert (home / source).resolve() == (output / "model").resolve()
    safe = tmp_path / "safe.txt"
    safe.write_text("x")
    command, source = pull_prepare_command(str(safe), "tok2")
    assert source == str(safe) and _sh(command, home, home).split()[1] == "file"


@pytest.mark.parametrize("broken", ["", "rsync\n", "what\npresent\n/ws\n"])
def test_an_unexpected_probe_answer_is_an_error(tmp_path, broken):
    with pytest.raises(ValueError):
        parse_probe(broken, [_upload(tmp_path, "a", "a")])
