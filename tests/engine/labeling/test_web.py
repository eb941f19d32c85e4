"""`studio-engine label-server`: the real server process, driven over HTTP while the store is written directly.

The web page and the studio label the same queue at once; the server binds 127.0.0.1 unless given a
token, and refuses every request without it when it binds beyond this computer.
"""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

if importlib.util.find_spec("gradio") is None:  # the server needs it; this process only needs the client
    pytest.skip("gradio is not installed (pip install -e '.[engine]')", allow_module_level=True)
httpx = pytest.importorskip("httpx")
from gradio_client.exceptions import AuthenticationError  # noqa: E402

from engine.labeling.store import LabelStore  # noqa: E402
from engine.labeling.web import is_loopback, local_url  # noqa: E402
from tests.engine.labeling.web_fixtures import LabelServer, client  # noqa: E402

PAIR_ITEMS = 40
# What a model (or an imported file) can say to fool an annotator: the other panel's heading, a remote
# image that reports who looked, raw HTML, a link, a table, LaTeX, an indented block.
HOSTILE_PROMPT = "Pick one.\n\n#### Right · 2 / →\n\nThe right answer is **verified**.\n    indented <b>bold</b>"
HOSTILE_ANSWERS = ("#### Left · 1 / →\nI am the answer the guidelines prefer.\n\n---\n\n#### Right · 2 / →\nWorse.",
                   "![pixel](http://attacker.example/track.png) <img src=x onerror=alert(1)> [click](http://x.example)"
                   "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\n$$x^2$$ \\*not bold\\*")


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
    store.create_queue("hostile")
    store.add_items("hostile", [{"prompt": HOSTILE_PROMPT, "candidates": list(HOSTILE_ANSWERS)}])
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


def test_prompts_and_answers_are_shown_as_text_not_as_markdown_or_html(local_server):
    from markdown_it import MarkdownIt

    result = client(local_server.url).predict("hostile", "reader", api_name="/start")
    shown = result[-1]["shown"]
    prompt, answers = result[3], [a["value"] if isinstance(a, dict) else a for a in result[4:6]]
    render = MarkdownIt("commonmark").enable("table").render
    html = render(prompt) + "".join(render(a) for a in answers)
    assert "<img" not in html and "<a " not in html and "<table" not in html and "<b>" not in html
    assert "<pre" not in html and "<code" not in html and "<strong>" not in html and "<hr" not in html
    headings = re.findall(r"<h\d>(.*?)</h\d>", html)
    assert len(headings) == 3 and headings[0].startswith("Prompt") and headings[1:] == ["Left · 1 / ←",
                                                                                          "Right · 2 / →"], headings
    texts = [_text_of(render(part)) for part in (prompt, *answers)]
    assert _words(HOSTILE_PROMPT) <= _words(texts[0])  # every word of it is there, as text
    for panel, candidate in zip(texts[1:], shown):
        assert _words(HOSTILE_ANSWERS[candidate]) <= _words(panel)


def _text_of(html: str) -> str:
    import html as html_module

    return html_module.unescape(re.sub(r"<[^>]+>", " ", html))


def _words(text: str) -> set[str]:
    return set(text.replace("\u00a0", " ").split())


def test_a_weak_token_is_refused_and_repeated_failed_log_ins_back_off(workspace):
    for weak in ("x", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1212121212121212", "short-but-varied"):
        refused = LabelServer(workspace, "--host", "0.0.0.0", "--token", weak)
        assert refused.process.wait(timeout=60) == 2, refused.stderr()
        assert "the access token is too weak" in refused.stderr() and "Traceback" not in refused.stderr()
    from_env = LabelServer(workspace, "--host", "0.0.0.0", env={"ATELIER_LABEL_TOKEN": "hunter2"})
    assert from_env.process.wait(timeout=60) == 2 and "too weak" in from_env.stderr()

    token = "correct-horse-battery-staple-42"
    server = LabelServer(workspace, "--host", "0.0.0.0", "--token", token).ready()
    try:
        login = server.url + "login"
        with httpx.Client(timeout=10) as http:
            codes = [http.post(login, data={"username": "eve", "password": f"guess-{i}"}).status_code
                     for i in range(30)]
            assert codes[:5] == [400] * 5 and set(codes[5:]) <= {400, 429} and codes.count(429) >= 20, codes
            blocked = http.post(login, data={"username": "alice", "password": token})
            assert blocked.status_code == 429 and int(blocked.headers["retry-after"]) >= 1
            assert "Too many failed log-ins" in blocked.text
            time.sleep(int(blocked.headers["retry-after"]) + 0.2)
            assert http.post(login, data={"username": "alice", "password": token}).status_code == 200
            assert http.post(login, data={"username": "eve", "password": "wrong"}).status_code == 400
    finally:
        server.stop()
