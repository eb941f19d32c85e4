"""`studio-engine label-server` on a single-answer queue: answers judged good or bad in the browser (the
real server process, driven over HTTP) are stored as the studio's Label page stores them, and `kind: kto`
trains on them through the real engine."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from engine.labeling.store import LabelStore
from tests.engine.conftest import ONE_THREAD, Engine
from tests.engine.rlhf.preference_fixtures import addition_answers

if importlib.util.find_spec("gradio") is None:
    pytest.skip("gradio is not installed (pip install -e '.[engine]')", allow_module_level=True)
httpx = pytest.importorskip("httpx")
from tests.engine.labeling.web_fixtures import LabelServer, client  # noqa: E402

ANSWERS = addition_answers(12, 5)
HOSTILE = "![pixel](http://attacker.example/track.png) <img src=x onerror=alert(1)>\n\n#### Left · 1 / ←"


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> Iterator[SimpleNamespace]:
    """A workspace with a single-answer queue of right and wrong sums, and its label server."""
    root = tmp_path_factory.mktemp("web-single")
    engine = Engine(root / "ws")
    engine.workspace.mkdir()
    engine.env.update(ONE_THREAD)
    store = LabelStore(engine.workspace / "store.db")
    store.create_queue("sums", mode="single", guidelines="Good when the sum is right.")
    store.add_items("sums", [{"prompt": p, "candidates": [{"text": t, "model": "m"}]} for p, t, _ in ANSWERS])
    store.create_queue("hostile", mode="single")
    store.add_items("hostile", [{"prompt": "Say something.", "candidates": [HOSTILE]}])
    store.close()
    server = LabelServer(engine.workspace, "--queue", "sums")
    try:
        yield SimpleNamespace(engine=engine, root=root, server=server.ready())
    finally:
        assert server.stop() == 0, server.stderr()


def test_the_page_offers_good_and_bad_with_the_label_pages_keys(setup):
    assert any("(single answers, good or bad, 0/12 items done)" in line for line in setup.server.stdout)
    config = httpx.get(setup.server.url + "config", timeout=10).json()
    buttons = {c["props"].get("elem_id"): c["props"].get("value") for c in config["components"]
               if c.get("type") == "button"}
    assert buttons["atelier-good"] == "Good (1 / Y)" and buttons["atelier-bad"] == "Bad (2 / N)"
    # The shortcuts script sends 1 / Y to the good button and 2 / N to the bad one where no pair is shown.
    keys = json.loads(config["js"].split("const keys = ", 1)[1].split(";", 1)[0])
    assert keys["1"] == ["atelier-left", "atelier-good"] and keys["2"] == ["atelier-right", "atelier-bad"]
    assert keys["y"] == keys["Y"] == ["atelier-good"] and keys["n"] == keys["N"] == ["atelier-bad"]


def test_a_single_answer_is_shown_as_text_under_its_keys(setup):
    from markdown_it import MarkdownIt

    result = client(setup.server.url).predict("hostile", "reader", api_name="/start")
    assert result[-1]["mode"] == "single" and result[-1]["shown"] == [0]
    html = MarkdownIt("commonmark").render(result[4]["value"])
    assert "<img" not in html and "<a " not in html
    assert "<h4>Answer · 1 or Y good, 2 or N bad</h4>" in html and html.count("<h4>") == 1
    assert "attacker.example/track.png" in html and "onerror" in html  # there, as text


def test_answers_judged_in_the_browser_are_stored_as_the_studio_stores_them_and_kto_trains_on_them(setup):
    right = {(p, t): good for p, t, good in ANSWERS}
    store = LabelStore(setup.engine.workspace / "store.db")
    c = client(setup.server.url)
    view = c.predict("sums", "web-judge", api_name="/start")[-1]
    assert not c.predict("sums", "web-judge", "", view["item_id"], api_name="/left")[-1]["saved"]
    skipped = view["item_id"]
    view = c.predict("sums", "web-judge", "", skipped, api_name="/skip")[-1]
    verdicts = {}
    while not view["finished"]:
        item = store.item(view["item_id"])
        verdict = "good" if right[(item.prompt, item.candidates[0].text)] else "bad"
        comment = "wrong sum" if verdict == "bad" else ""
        view = c.predict("sums", "web-judge", comment, view["item_id"], api_name=f"/{verdict}")[-1]
        assert view["saved"], view["status"]
        verdicts[item.id] = verdict
    undone = c.predict("sums", "web-judge", api_name="/undo")[-1]
    last = undone["item_id"]
    assert c.predict("sums", "web-judge", "", last, api_name=f"/{verdicts[last]}")[-1]["saved"]
    c.close()

    labels = store.labels("sums")
    assert {l.item_id: l.verdict for l in labels if l.verdict != "skip"} == verdicts and len(verdicts) == 11
    assert all(l.shown == (0,) and l.ranking is None and l.kind == "human" and l.source == "web"
               and l.annotator == "web-judge" for l in labels)
    assert {l.comment for l in labels if l.verdict == "bad"} == {"wrong sum"}

    spec = {"kind": "kto", "name": "kto-web", "model": {"path": str(_tiny_policy(setup.root))},
            "data": {"sources": ["queue:sums"], "eval_fraction": 0.0, "max_length": 64},
            "method": {"name": "lora", "lora": {"rank": 4, "alpha": 8}},
            "train": {"max_steps": 2, "batch_size": 4, "learning_rate": 1e-3, "warmup_steps": 0, "eval_every": 100,
                      "checkpoint_every": 100, "log_every": 1},
            "resources": {"device": "cpu"}, "seed": 0}
    result = setup.engine.run("run", str(setup.engine.write_spec(spec)), "--json", timeout=300)
    events = setup.engine.stdout_events(result.stdout)
    assert result.returncode == 0 and events[-1]["status"] == "completed", (events[-1:], result.stderr[-3000:])
    assert events[-1]["summary"]["train_answers"] == 11  # the skipped item gives no judged answer
    assert [e["step"] for e in events if e["type"] == "metric" and e["split"] == "train"] == [1, 2]


def _tiny_policy(root: Path) -> Path:
    from tests.engine.policy_fixtures import tiny_policy

    return tiny_policy(root / "models").chat
