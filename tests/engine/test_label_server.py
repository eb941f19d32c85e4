"""`studio-engine label-server`: the real server process, driven over HTTP while the store is written directly.

The web page and the studio label the same queue at once; the server binds 127.0.0.1 unless given a
token, and refuses every request without it when it binds beyond this computer.
"""

from __future__ import annotations

import importlib.util
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

if importlib.util.find_spec("gradio") is None:  # the server needs it; this process only needs the client
    pytest.skip("gradio is not installed (pip install -e '.[engine]')", allow_module_level=True)
httpx = pytest.importorskip("httpx")
from gradio_client import Client  # noqa: E402
from gradio_client.exceptions import AuthenticationError  # noqa: E402

from engine.labeling.store import LabelStore  # noqa: E402
from engine.labeling.web import is_loopback, local_url  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PAIR_ITEMS = 40


class LabelServer:
    """One `studio-engine label-server` process in its own process group, and what it printed."""

    def __init__(self, workspace: Path, *args: str, env: dict | None = None):
        self.lines: queue.Queue[str] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr_path = workspace / f"label-server-{time.monotonic_ns()}.err"
        env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_OFFLINE": "1"}
        env.pop("ATELIER_LABEL_TOKEN", None)
        with open(self.stderr_path, "w") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "engine.cli", "--workspace", str(workspace), "label-server", "--port", "0",
                 *args], stdout=subprocess.PIPE, stderr=err, text=True, cwd=ROOT, env=env, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""

    def ready(self) -> LabelServer:
        self.url = self.wait_for_line("label-server: ").removeprefix("label-server: ")
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for_line(self, prefix: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.stdout.append(line)
            if line.startswith(prefix):
                return line
        raise AssertionError(f"no line starting {prefix!r}; stdout: {self.stdout}; stderr: {self.stderr()}")

    def printed(self, prefix: str) -> str | None:
        return next((line.removeprefix(prefix) for line in self.stdout if line.startswith(prefix)), None)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def terminate(self) -> None:
        # Once: a second SIGTERM could land while the server is already exiting (after Python put the
        # default handler back), and would read as a crash.
        if self.process.poll() is None and not getattr(self, "_terminated", False):
            self._terminated = True
            os.killpg(self.process.pid, signal.SIGTERM)

    def stop(self) -> int:
        """Stop the whole process group (SIGTERM, then SIGKILL after 10 s); the exit status."""
        self.terminate()
        try:
            return self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()


def client(url: str, auth: tuple[str, str] | None = None) -> Client:
    return Client(url, auth=auth, verbose=False, analytics_enabled=False, download_files=False)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A workspace whose store.db holds a pair queue, a second pair queue and a ranking queue."""
    path = tmp_path_factory.mktemp("label-ws")
    store = LabelStore(path / "store.db")
    store.create_queue("prefs", guidelines="Prefer the **correct** sum.")
    store.add_items("prefs", [{"prompt": f"What is {i} + {i}?", "candidates": [f"{2 * i}", f"{2 * i + 1}"]}
                              for i in range(PAIR_ITEMS)])
    store.create_queue("second")
    store.add_items("second", [{"prompt": f"Say hi #{i}", "candidates": [f"hi {i}", f"bye {i}"]} for i in range(5)])
    store.create_queue("guest")
    store.add_items("guest", [{"prompt": "Hello?", "candidates": ["Hi.", "Go away."]}])
    store.create_queue("ranked", mode="rank")
    store.add_items("ranked", [{"prompt": f"Reverse '{i} b c'", "candidates": [f"c b {i}", "b c", f"{i} b c"]}
                               for i in range(3)])
    store.close()
    return path


@pytest.fixture(scope="module")
def servers(workspace):
    """The default server (127.0.0.1) and one bound to every address (token); started side by side."""
    started = [LabelServer(workspace), LabelServer(workspace, "--host", "0.0.0.0")]
    try:
        yield [server.ready() for server in started]
    finally:
        for server in started:
            server.terminate()
        codes = [server.stop() for server in started]
    assert codes == [0, 0], "the servers did not stop cleanly on SIGTERM"


@pytest.fixture(scope="module")
def local_server(servers):
    return servers[0]


@pytest.fixture(scope="module")
def shared_server(servers):
    return servers[1]


def test_the_default_binding_is_this_computer_only_and_the_page_says_so(local_server):
    assert local_server.url.startswith("http://127.0.0.1:")
    assert any("Only this computer can open this page" in line for line in local_server.stdout)
    assert local_server.printed("label-server token: ") is None
    page = httpx.get(local_server.url, timeout=10)
    assert page.status_code == 200
    assert "Only this computer can open this page" in page.text


def test_web_and_gui_label_the_same_queue_at_once_without_conflicts(local_server, workspace):
    errors: list[BaseException] = []
    statuses: Counter[str] = Counter()
    first_web_label = threading.Event()

    def web(annotator: str) -> None:
        try:
            c = client(local_server.url)
            result = c.predict("prefs", annotator, api_name="/start")
            while not result[-1]["finished"]:
                verdict = ("/left", "/right", "/tie")[result[-1]["item_id"] % 3]
                result = c.predict("prefs", annotator, "", result[-1]["item_id"], api_name=verdict)
                statuses[result[-1]["status"].split(":")[0]] += 1
                first_web_label.set()
            c.close()
        except BaseException as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    def gui() -> None:
        try:
            store = LabelStore(workspace / "store.db")
            first_web_label.wait(30)
            while (task := store.next_task("prefs", "gui")) is not None:
                store.add_label(task, "left" if task.item.id % 2 else "right", source="gui", seconds=0.5)
                time.sleep(0.01)
            store.close()
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=web, args=("web",)), threading.Thread(target=web, args=("web2",)),
               threading.Thread(target=gui)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert statuses == {"Saved": statuses["Saved"]}, statuses

    store = LabelStore(workspace / "store.db")
    labels = store.labels("prefs")
    per_item = Counter(label.item_id for label in labels)
    assert len(per_item) == PAIR_ITEMS and set(per_item.values()) == {1}  # every item once, none twice
    by = Counter(label.annotator for label in labels)
    print("labels by annotator:", dict(by))
    assert by["web"] + by["web2"] == statuses["Saved"] and by["gui"] >= 1 and by["web"] + by["web2"] >= 2
    assert {label.source for label in labels if label.annotator.startswith("web")} == {"web"}
    for label in labels:
        if label.verdict in ("left", "right"):
            winner = label.shown[0] if label.verdict == "left" else label.shown[1]
            assert label.ranking[0] == winner
    progress = store.progress("prefs")
    assert (progress.done, progress.labels) == (PAIR_ITEMS, PAIR_ITEMS)
    assert "database is locked" not in local_server.stderr()


def test_undo_over_http_hands_the_item_back_as_it_was_shown(local_server, workspace):
    store = LabelStore(workspace / "store.db")
    c = client(local_server.url)
    first = c.predict("second", "undoer", api_name="/start")[-1]
    saved = c.predict("second", "undoer", "  close call ", first["item_id"], api_name="/right")[-1]
    assert saved["saved"] and saved["item_id"] != first["item_id"] and saved["mine"] == 1
    [label] = store.labels("second", annotator="undoer")
    assert (label.item_id, label.verdict, label.shown, label.comment, label.source) == (
        first["item_id"], "right", tuple(first["shown"]), "close call", "web")
    assert label.seconds is not None

    undone = c.predict("second", "undoer", api_name="/undo")[-1]
    assert (undone["item_id"], undone["shown"], undone["mine"]) == (first["item_id"], first["shown"], 0)
    assert store.labels("second", annotator="undoer") == []
    assert store.labels("second", annotator="undoer", include_retracted=True)[0].retracted is not None

    # A label for an item the page no longer shows is refused rather than given to the current item.
    stale = c.predict("second", "undoer", "", saved["item_id"], api_name="/left")[-1]
    assert not stale["saved"] and stale["item_id"] == first["item_id"]
    again = c.predict("second", "undoer", "", first["item_id"], api_name="/left")[-1]
    assert again["saved"]
    assert [lb.verdict for lb in store.labels("second", annotator="undoer")] == ["left"]
    assert "Nothing to undo" not in c.predict("second", "undoer", api_name="/undo")[-1]["status"]
    c.close()


def test_ranking_over_http_is_stored_in_candidate_terms(local_server, workspace):
    c = client(local_server.url)
    result = c.predict("ranked", "ranker", api_name="/start")
    task = result[-1]
    assert task["mode"] == "rank" and len(task["shown"]) == 3
    assert [r for r in result[4:7]]  # three answer panels
    refused = c.predict("ranked", "ranker", "1 1 2", "", task["item_id"], api_name="/rank")[-1]
    assert not refused["saved"] and refused["item_id"] == task["item_id"]
    assert c.predict("ranked", "ranker", "", task["item_id"], api_name="/left")[-1]["saved"] is False
    done = c.predict("ranked", "ranker", "2 > 3 > 1", "", task["item_id"], api_name="/rank")[-1]
    assert done["saved"]
    [label] = LabelStore(workspace / "store.db").labels("ranked", annotator="ranker")
    shown = task["shown"]
    assert label.verdict == "rank" and label.ranking == (shown[1], shown[2], shown[0])
    c.close()


def test_binding_beyond_this_computer_requires_the_printed_token(shared_server, workspace):
    token = shared_server.printed("label-server token: ")
    assert token and len(token) >= 24
    assert any("access requires the token" in line for line in shared_server.stdout)
    url = shared_server.url
    assert url.startswith("http://127.0.0.1:")

    assert httpx.get(url + "gradio_api/info", timeout=10).status_code == 401
    assert httpx.get(url + "config", timeout=10).status_code == 401
    call = httpx.post(url + "gradio_api/call/start", json={"data": ["guest", "intruder"]}, timeout=10)
    assert call.status_code == 401
    login_page = httpx.get(url, timeout=10)
    assert "access requires the token" in login_page.text
    assert "Only this computer" not in login_page.text
    assert httpx.post(url + "login", data={"username": "eve", "password": "not-the-token"},
                      timeout=10).status_code == 400
    with pytest.raises(AuthenticationError):
        client(url)

    c = client(url, auth=("alice", token))
    task = c.predict("guest", "someone-else", api_name="/start")[-1]
    assert task["annotator"] == "alice"  # the signed-in name, not the typed one
    assert c.predict("guest", "", "", task["item_id"], api_name="/tie")[-1]["saved"]
    assert [label.annotator for label in LabelStore(workspace / "store.db").labels("guest")] == ["alice"]
    page = httpx.Client(timeout=10)
    assert page.post(url + "login", data={"username": "alice", "password": token}).status_code == 200
    assert "Shared on 0.0.0.0" in page.get(url).text
    c.close()


def test_which_addresses_need_a_token():
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1") and is_loopback("[::1]")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert local_url("0.0.0.0", 80) == "http://127.0.0.1:80/" and local_url("::", 81) == "http://[::1]:81/"
