"""`studio-engine label-server`: the labeling queue as a web page (Gradio).

Remote annotators label in a browser while the studio labels the same queue: both write to the same
`store.db` through `LabelStore`, one transaction per label. The page binds 127.0.0.1 unless told
otherwise; any other address needs an access token (given, or generated and printed), and every
request then needs a log-in with the annotator's name and that token. A given token must be strong
(`web_guard.token_problem`), failed log-ins from one address back off, and prompts and answers are
shown as plain text (`web_guard`).

Gradio is imported inside the command: the studio imports engine modules and must not load it.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import secrets
import signal
import socket
import threading
from pathlib import Path

from engine.cli.common import fail
from engine.labeling.web_guard import LoginBackoff, token_problem

TOKEN_ENV = "ATELIER_LABEL_TOKEN"
URL_PREFIX = "label-server: "  # the line programs (tests, the studio) read the address from
TOKEN_PREFIX = "label-server token: "
LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def add_label_server_command(sub) -> None:
    """Registers `label-server` on the engine CLI's subparsers."""
    description = ("Serve a labeling queue as a web page, so annotators label in a browser at the same time "
                   "as the studio (same store, no conflicts). Binds 127.0.0.1 by default: only this computer "
                   "can open it. Binding another address requires an access token: annotators sign in with "
                   "their name and the token.")
    p = sub.add_parser("label-server", help="Serve a labeling queue as a web page (Gradio).", description=description)
    p.add_argument("--store", type=Path, default=None, help="the label store (default: <workspace>/store.db)")
    p.add_argument("--queue", default=None, help="the queue shown first (default: the first queue; the page "
                                                 "offers the others)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this computer only; "
                                                       "0.0.0.0: every network of this computer, token required)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0: any free port)")
    p.add_argument("--token", default=None, help=f"access token (default: ${TOKEN_ENV}; prefer the variable, a "
                   "command line is visible to other users). Without one, binding beyond this computer "
                   "generates one and prints it.")
    p.set_defaults(func=cmd_label_server)


def is_loopback(host: str) -> bool:
    """Whether only this computer can reach `host` (127.0.0.0/8, ::1, localhost)."""
    host = host.strip().strip("[]").lower()
    if host in LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def local_url(host: str, port: int) -> str:
    """The address a program on this computer opens: the host itself, or loopback for a wildcard bind."""
    bare = host.strip().strip("[]")
    if bare in ("0.0.0.0", ""):
        bare = "127.0.0.1"
    elif bare == "::":
        bare = "::1"
    return f"http://[{bare}]:{port}/" if ":" in bare else f"http://{bare}:{port}/"


def free_port(host: str) -> int:
    bare = host.strip().strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((bare, 0))
        return s.getsockname()[1]


def cmd_label_server(args: argparse.Namespace) -> int:
    from engine.labeling.store import LabelStore, LabelStoreError

    store_path = (args.store or args.workspace / "store.db").expanduser().resolve()
    if not store_path.is_file():
        return fail(f"no label store at {store_path}. Create a labeling queue first (the studio's Label page or "
                     "`studio-engine labels`), or point --store at the studio's store.db.")
    if not 0 <= args.port <= 65535:
        return fail(f"--port must be between 0 and 65535 (0: any free port); got {args.port}.")
    store = LabelStore(store_path)
    queues = store.queues()
    if not queues:
        return fail(f"{store_path} has no labeling queue yet. Create one in the studio's Label page or with "
                     "`studio-engine labels`.")
    try:
        queue = store.queue(args.queue) if args.queue else queues[0]
    except LabelStoreError as e:
        return fail(str(e))

    host = args.host.strip()
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token is not None and (weak := token_problem(token)):
        return fail(f"{weak}.\nWhat to do: leave --token out (and {TOKEN_ENV} unset) and a strong one is generated "
                     "and printed, or make one with `python -c \"import secrets; print(secrets.token_urlsafe(24))\"`.",
                     2)
    generated = token is None and not is_loopback(host)
    if generated:
        token = secrets.token_urlsafe(24)

    # No analytics, version checks or telemetry: the page must work on a machine without network.
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    from engine.labeling.web_session import AnnotatorSessions

    sessions = AnnotatorSessions(store, queue.name)
    attempts = 5 if args.port == 0 else 1
    for attempt in range(attempts):
        port = args.port or free_port(host)
        page = _launch(sessions, host, port, token)
        if page is not None:
            break
        if attempt + 1 == attempts:
            return fail(f"could not listen on {_address(host, port)}: the port is taken, or the address is not "
                         "one of this computer's. Pick another port with --port (0: any free port) or another --host.")

    progress = store.progress(queue)
    others = f"; the page offers {len(queues) - 1} other queue(s)" if len(queues) > 1 else ""
    mode = {"rank": "ranking", "single": "single answers, good or bad"}.get(queue.mode, "pairs")
    print(f"Labeling queue '{queue.name}' ({mode}, {progress.done}/"
          f"{progress.items} items done) from {store_path}{others}.", flush=True)
    if token is None:
        print(f"Only this computer can open this page (bound to {_address(host, port)}). Stop with Ctrl+C.", flush=True)
    else:
        where = (f"Bound to {_address(host, port)}" if is_loopback(host) else
                 f"Shared on {_address(host, port)}: annotators open {_annotator_url(host, port)}")
        print(f"{where}; access requires the token. Annotators sign in with their name as the username and the "
              "token as the password. Stop with Ctrl+C.", flush=True)
        if generated:
            print(f"{TOKEN_PREFIX}{token}", flush=True)
    print(f"{URL_PREFIX}{local_url(host, port)}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(3600):
            pass
    except KeyboardInterrupt:
        pass
    page.close()
    return 0


def _launch(sessions, host: str, port: int, token: str | None):
    """The page, serving on host:port in background threads; None when it could not listen there."""
    from starlette.middleware import Middleware

    from engine.labeling.web_page import CSS, SHORTCUTS_JS, PageSettings, build_page

    address = _address(host, port)
    if token is None:
        banner = f"🔒 Only this computer can open this page (bound to {address})."
    elif is_loopback(host):
        banner = f"🔒 Only this computer can open this page (bound to {address}); access requires the token."
    else:
        banner = f"🔑 Shared on {address}; access requires the token."
    if token is not None:
        banner += " You signed in with your name and the token · [Sign out](logout)"
    page = build_page(sessions, PageSettings(banner=banner, token_required=token is not None,
                                             panels=sessions.max_candidates()))
    page.queue(default_concurrency_limit=16)  # annotators label in parallel; the store serialises the writes
    try:
        page.launch(
            server_name=f"[{host.strip('[]')}]" if ":" in host else host, server_port=port,
            prevent_thread_lock=True, quiet=True, share=False, inbrowser=False, ssr_mode=False, mcp_server=False,
            enable_monitoring=False, run_history=False, footer_links=["api"], show_error=True,
            js=SHORTCUTS_JS, css=CSS, auth=_token_check(token) if token is not None else None,
            auth_message=_login_message(host, address) if token is not None else None,
            app_kwargs={"middleware": [Middleware(LoginBackoff)]})
    except OSError:
        page.close()
        return None
    return page


def _address(host: str, port: int) -> str:
    return f"[{host.strip('[]')}]:{port}" if ":" in host else f"{host}:{port}"


def _annotator_url(host: str, port: int) -> str:
    """The address to give remote annotators: this computer's name for a wildcard bind."""
    if host.strip("[]") in ("0.0.0.0", "::"):
        return f"http://{socket.gethostname()}:{port}/"
    return f"http://{_address(host, port)}/"


def _token_check(token: str):
    def check(username: str, password: str) -> bool:
        name = (username or "").strip()
        return bool(name) and len(name) <= 64 and secrets.compare_digest(password.encode(), token.encode())
    return check


def _login_message(host: str, address: str) -> str:
    where = f"Bound to {address}" if is_loopback(host) else f"Shared on {address}"
    return (f"<b>Atelier labeling.</b> {where}; access requires the token. Sign in with your name as the "
            "username and the token as the password.")
