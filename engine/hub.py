"""`studio-engine push RUN --repo USER/NAME`: upload a run's model, adapter or dataset to the Hugging Face Hub.

The token comes from the environment (HF_TOKEN, HUGGING_FACE_HUB_TOKEN), else the system keyring
(service "atelier", user "huggingface"), else huggingface_hub's own login; it is passed to the upload
call only, never printed, logged or written anywhere by us.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.cli.common import fail
from engine.rundir import RunDirectory, find_run

KEYRING_SERVICE = "atelier"
KEYRING_USER = "huggingface"

# --what → the folder under the run's output/ (first one that exists) and the Hub repository type.
WHAT_FOLDERS: dict[str, tuple[tuple[str, ...], str]] = {
    "model": (("merged", "model"), "model"),
    "adapter": (("adapter",), "model"),
    "policy": (("policy",), "model"),
    "reward_model": (("reward_model",), "model"),
    "tokenizer": (("tokenizer",), "model"),
    "dataset": (("dataset",), "dataset"),
}


class PushError(Exception):
    """A push that cannot happen, said as a sentence for the user."""


@dataclass
class Token:
    value: str
    source: str  # where it came from, for the user (never the token itself)

    def __repr__(self) -> str:
        return f"Token(source={self.source!r})"


def resolve_token() -> Token:
    """The first token found: HF_TOKEN, HUGGING_FACE_HUB_TOKEN, the system keyring, huggingface_hub's login."""
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"):
        if value := os.environ.get(name, "").strip():
            return Token(value, f"the {name} environment variable")
    keyring_note = ""
    try:
        import keyring
        import keyring.errors
    except ImportError:
        keyring_note = " (the keyring package is not installed, so the system keyring was not asked)"
    else:
        try:
            if value := (keyring.get_password(KEYRING_SERVICE, KEYRING_USER) or "").strip():
                return Token(value, "the system keyring")
        except keyring.errors.KeyringError as e:
            keyring_note = f" (the system keyring could not be read: {type(e).__name__})"
    from huggingface_hub import get_token

    if value := (get_token() or "").strip():
        return Token(value, "huggingface_hub's stored login")
    raise PushError(
        f"No Hugging Face token found{keyring_note}. Set HF_TOKEN in the engine's environment, store one in the "
        f"system keyring with `keyring set {KEYRING_SERVICE} {KEYRING_USER}`, or run `hf auth login`; "
        f"the token needs write access.")


def choose_folder(run: RunDirectory, what: str | None) -> tuple[Path, str, str]:
    """(folder to upload, repo type, what) for `--what` (or the run kind's usual output)."""
    if what is None:
        # Imported here: every command's parser imports this module, and KINDS loads every kind's spec.
        from engine.kinds import KINDS

        kind = _run_kind(run)
        what = KINDS[kind].upload if kind in KINDS else None  # finetune: the adapter when it made one
        if what is None:
            raise PushError(f"A {kind or 'unknown'} run has nothing to push by default: give --what "
                            f"({', '.join(WHAT_FOLDERS)}).")
        if what == "adapter" and not (run.output_dir / "adapter").is_dir():
            what = "model"  # full fine-tuning saves a model, not an adapter
    names, repo_type = WHAT_FOLDERS[what]
    for name in names:
        folder = run.output_dir / name
        if folder.is_dir() and any(folder.iterdir()):
            return folder, repo_type, what
    raise PushError(f"Run {run.run_id} has no {what} to push: {run.output_dir / names[-1]} does not exist "
                    f"(has the run completed? `studio-engine show {run.run_id}` lists its outputs).")


def check_contents(run: RunDirectory, folder: Path) -> None:
    """Refuse (PushError) a folder whose upload would reach beyond the run's own files: the folder (or
    output/) being a symbolic link, or holding one — the upload would send whatever it points at, a key
    or a home folder — or holding something that is not a plain file or folder (a pipe would hang it)."""
    for outer in (run.output_dir, folder):
        if outer.is_symlink():
            raise PushError(f"{outer} is a symbolic link (to {os.readlink(outer)}): push uploads only the run's own "
                            "files, never what a link points to. Replace the link with the folder itself.")
    odd: list[str] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        for name in dirs + files:
            path = Path(root) / name
            if path.is_symlink():
                odd.append(f"{path.relative_to(folder)} → {os.readlink(path)}")
            elif not (path.is_dir() or path.is_file()):
                odd.append(f"{path.relative_to(folder)} (not a regular file)")
    if odd:
        shown = "; ".join(odd[:5]) + (f"; and {len(odd) - 5} more" if len(odd) > 5 else "")
        raise PushError(f"{folder} holds symbolic links or special files ({shown}): push uploads only the run's own "
                        "files, never what a link points to. Replace each link with the file itself, or remove it, "
                        "then push again; nothing was uploaded.")


def _run_kind(run: RunDirectory) -> str | None:
    import yaml

    try:
        return (yaml.safe_load(run.spec_path.read_text(encoding="utf-8")) or {}).get("kind")
    except (OSError, yaml.YAMLError, AttributeError):
        return None


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


OFFLINE_MESSAGE = ("The Hugging Face Hub is not reachable from here{why}: nothing was uploaded. "
                   "Push again from a machine with network access{unset}.")


def push(run: RunDirectory, repo: str, what: str | None = None, private: bool = False) -> str:
    """Upload the chosen folder to `repo` (created when missing); return the repository's URL."""
    folder, repo_type, what = choose_folder(run, what)
    check_contents(run, folder)
    if offline():
        raise PushError(OFFLINE_MESSAGE.format(why=" (HF_HUB_OFFLINE is set)", unset=", with HF_HUB_OFFLINE unset"))
    token = resolve_token()
    print(f"Uploading {folder} to {repo} ({repo_type}) with the token from {token.source}…", file=sys.stderr)
    import httpx
    from huggingface_hub import create_repo, upload_folder
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    try:
        url = create_repo(repo, repo_type=repo_type, private=private, exist_ok=True, token=token.value)
        upload_folder(repo_id=repo, folder_path=str(folder), repo_type=repo_type, token=token.value,
                      commit_message=f"Upload {what} from Atelier run {run.run_id}")
    except OfflineModeIsEnabled:
        raise PushError(OFFLINE_MESSAGE.format(why=" (offline mode is on)", unset="")) from None
    except (httpx.TransportError, ConnectionError) as e:
        raise PushError(OFFLINE_MESSAGE.format(why=f" ({type(e).__name__})", unset="")) from None
    except HfHubHTTPError as e:
        status = getattr(e.response, "status_code", None)
        if status in (401, 403):
            raise PushError(f"The Hub refused the token from {token.source} for {repo} (HTTP {status}): it needs "
                            f"write access to that namespace.") from None
        raise PushError(f"The Hub refused the upload to {repo}: {e}") from None
    return str(url)


def cmd_push(args) -> int:
    try:
        url = push(find_run(args.workspace, args.run), args.repo, args.what, args.private)
    except PushError as e:
        return fail(str(e))
    print(f"Pushed to {url}")
    return 0


def add_push_command(sub: argparse._SubParsersAction) -> None:
    help = "Upload a run's model, adapter, policy, reward model or dataset to the Hugging Face Hub."
    p = sub.add_parser("push", help=help, description=help + " The token comes from HF_TOKEN, the system "
                       f"keyring (`keyring set {KEYRING_SERVICE} {KEYRING_USER}`) or `hf auth login`.")
    p.add_argument("run", help="run id, unique id prefix, or path")
    p.add_argument("--repo", required=True, metavar="USER/NAME", help="the Hub repository (created when missing)")
    p.add_argument("--what", choices=list(WHAT_FOLDERS),
                   help="which output to upload (default: the run kind's main output)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.set_defaults(func=cmd_push)
