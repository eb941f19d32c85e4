"""The Gradio page of `studio-engine label-server`: components, keyboard shortcuts and API endpoints.

Imported only by the label-server command (it imports gradio). What a click does is decided in
`web_session.py`; this module lays the page out and turns a `PageView` into component updates.

Every action is also a named API endpoint, so scripts and tests label over HTTP with gradio_client:
`/start` (queue, name), `/left` `/right` `/tie` `/both_bad` (pair and ranking items), `/good` `/bad`
(single-answer items) and `/skip`, each (queue, name, comment, item_id),
`/rank` (queue, name, order, comment, item_id), `/undo` (queue, name) and `/refresh` (queue, name).
`item_id` is the item the caller was shown (None: whatever its session shows). With a token, the
name is the one signed in with and the `name` argument is ignored. Each returns the page's outputs;
the last is a JSON summary (item_id, position, shown, finished, saved, status, items, done, mine, …).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import gradio as gr

from engine.labeling.web_guard import plain_markdown
from engine.labeling.web_session import AnnotatorSessions, PageView

# Clicks the first shown button of those the pressed key names: the page shows either the pair buttons or
# the good / bad ones, so 1 and 2 mean left / right on a pair and good / bad on a single answer, as in
# the studio's Label page. Keys typed into a text box (the comment, the ranking, the name) stay there,
# Ctrl+Z included, so a comment can be edited without undoing a label.
SHORTCUTS_JS = """
() => {
  const keys = {"1": ["atelier-left", "atelier-good"], "ArrowLeft": ["atelier-left"],
                "2": ["atelier-right", "atelier-bad"], "ArrowRight": ["atelier-right"],
                "y": ["atelier-good"], "Y": ["atelier-good"], "n": ["atelier-bad"], "N": ["atelier-bad"],
                "3": ["atelier-tie"], "4": ["atelier-both-bad"], "s": ["atelier-skip"], "S": ["atelier-skip"]};
  const press = (id) => {
    const el = document.getElementById(id);
    const button = el && (el.tagName === "BUTTON" ? el : el.querySelector("button"));
    if (!button || button.disabled || button.offsetParent === null) return false;
    button.click();
    return true;
  };
  document.addEventListener("keydown", (event) => {
    const t = event.target;
    const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT" || t.tagName === "SELECT"
                         || t.isContentEditable);
    if (typing || event.altKey || event.repeat) return;
    if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "z") {
      if (press("atelier-undo")) event.preventDefault();
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    const ids = keys[event.key] || [];
    if (ids.some(press)) event.preventDefault();
  });
}
"""

CSS = """
.atelier-answer { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 12px; }
.atelier-prompt { padding: 4px 0 8px 0; }
"""

KEYS_HELP = ("Keys: **1** or **←** left better · **2** or **→** right better · **3** tie · **4** both bad · "
             "**S** skip · **Ctrl+Z** undo (not while typing in a text box). Single answers: **1** or **Y** "
             "good · **2** or **N** bad. Ranking: type the answer numbers best first, e.g. `2 1 3`, then Enter.")


@dataclass(frozen=True)
class PageSettings:
    """How the server is reached, for the banner and the log-in page."""

    banner: str
    token_required: bool
    panels: int  # answer panels on the page: the most candidates of an item


def build_page(sessions: AnnotatorSessions, settings: PageSettings) -> gr.Blocks:
    queues = sessions.queue_names()
    with gr.Blocks(title="Atelier labeling", analytics_enabled=False) as page:
        gr.Markdown("## Atelier labeling")
        gr.Markdown(settings.banner, elem_id="atelier-banner")
        with gr.Row(equal_height=True):
            queue = gr.Dropdown(choices=queues, value=sessions.default_queue, label="Queue", scale=2)
            name = gr.Textbox(label="Your name (recorded with each label)", scale=2, max_lines=1,
                              visible=not settings.token_required, placeholder="e.g. alice")
            start = gr.Button("Start labeling", scale=1, visible=not settings.token_required)
        with gr.Accordion("Guidelines", open=False):
            guidelines = gr.Markdown(label="guidelines")
        progress = gr.Markdown(label="progress")
        # Prompts and answers arrive escaped (plain_markdown): no LaTeX either, and their line breaks kept.
        untrusted = {"latex_delimiters": [], "line_breaks": True}
        prompt = gr.Markdown(label="prompt", elem_classes=["atelier-prompt"], **untrusted)
        with gr.Row(equal_height=True):
            answers = [gr.Markdown(label=f"answer_{i + 1}", visible=i < 2, elem_classes=["atelier-answer"], **untrusted)
                       for i in range(settings.panels)]
        with gr.Row():
            left = gr.Button("Left better (1 / ←)", variant="primary", elem_id="atelier-left")
            right = gr.Button("Right better (2 / →)", variant="primary", elem_id="atelier-right")
            rank_order = gr.Textbox(label="Your ranking, best first (answer numbers)", visible=False,
                                    max_lines=1, scale=2, placeholder="e.g. 2 1 3")
            rank = gr.Button("Submit ranking", variant="primary", visible=False, elem_id="atelier-rank")
            good = gr.Button("Good (1 / Y)", variant="primary", visible=False, elem_id="atelier-good")
            bad = gr.Button("Bad (2 / N)", variant="primary", visible=False, elem_id="atelier-bad")
        with gr.Row():
            tie = gr.Button("Tie (3)", elem_id="atelier-tie")
            both_bad = gr.Button("Both bad (4)", elem_id="atelier-both-bad")
            skip = gr.Button("Skip (S)", elem_id="atelier-skip")
            undo = gr.Button("Undo (Ctrl+Z)", elem_id="atelier-undo")
        comment = gr.Textbox(label="Comment (optional, saved with your next label)", lines=2, max_lines=6)
        status = gr.Markdown(label="status")
        gr.Markdown(KEYS_HELP)
        item_id = gr.Number(visible=False, precision=0, label="item_id")
        task = gr.JSON(visible=False, label="task")
        saved_name = gr.BrowserState("", storage_key="atelier-annotator")

        outputs = [status, progress, guidelines, prompt, *answers, left, right, tie, both_bad, skip, rank_order,
                   rank, good, bad, comment, item_id, task]
        render = partial(_render, panels=settings.panels)

        def who(typed_name: str, request: gr.Request) -> str:
            # With a token, the name is the one signed in with: a tab cannot label under another name.
            return (request.username or "") if settings.token_required else typed_name

        def session_id(request: gr.Request) -> str:
            return request.session_hash or ""

        # Parameter names are the API's argument names (gradio_client, /gradio_api/info).
        def on_start(queue, name, request: gr.Request):
            return render(sessions.start(session_id(request), queue, who(name, request)))

        def labeler(verdict: str):
            def on_label(queue, name, comment, item_id, request: gr.Request):
                return render(sessions.label(session_id(request), queue, who(name, request), verdict,
                                             comment or "", item_id=_item(item_id)))
            return on_label

        def on_rank(queue, name, order, comment, item_id, request: gr.Request):
            return render(sessions.label(session_id(request), queue, who(name, request), "rank",
                                         comment or "", ranking_text=order, item_id=_item(item_id)))

        def on_undo(queue, name, request: gr.Request):
            return render(sessions.undo(session_id(request), queue, who(name, request)))

        def on_refresh(queue, name, request: gr.Request):
            return render(sessions.refresh(session_id(request), queue, who(name, request)))

        def on_tick(queue, name, request: gr.Request):
            return _progress_text(sessions.refresh(session_id(request), queue, who(name, request)))

        def on_close(request: gr.Request) -> None:
            sessions.close(session_id(request))

        start_inputs = [queue, name]
        start.click(on_start, start_inputs, outputs, api_name="start").then(
            lambda n: n, name, saved_name, api_visibility="private")
        name.submit(on_start, start_inputs, outputs, api_visibility="private").then(
            lambda n: n, name, saved_name, api_visibility="private")
        queue.input(on_start, start_inputs, outputs, api_visibility="private")
        for button, verdict in ((left, "left"), (right, "right"), (tie, "tie"), (both_bad, "both_bad"),
                                (good, "good"), (bad, "bad"), (skip, "skip")):
            button.click(labeler(verdict), [queue, name, comment, item_id], outputs, api_name=verdict)
        rank_inputs = [queue, name, rank_order, comment, item_id]
        rank.click(on_rank, rank_inputs, outputs, api_name="rank")
        rank_order.submit(on_rank, rank_inputs, outputs, api_visibility="private")
        undo.click(on_undo, [queue, name], outputs, api_name="undo")
        gr.Button("Refresh", visible=False).click(on_refresh, [queue, name], outputs, api_name="refresh")
        gr.Timer(20).tick(on_tick, [queue, name], progress, api_visibility="private", show_progress="hidden")

        # On (re)load: queues created since the server started, the name this browser used last, its item.
        loaded = page.load(lambda: gr.update(choices=sessions.queue_names()), None, queue, api_visibility="private")
        if not settings.token_required:
            loaded = loaded.then(lambda n: n, saved_name, name, api_visibility="private")
        loaded.then(on_start, start_inputs, outputs, api_visibility="private")
        page.unload(on_close)
    return page


def _item(value) -> int | None:
    return None if value in (None, "") else int(value)


def _progress_text(view: PageView) -> str:
    if not view.progress:
        return ""
    return f"Labeling **{plain_markdown(view.queue)}** as **{plain_markdown(view.annotator)}** · {view.progress}"


def _answer_title(view: PageView, index: int) -> str:
    if len(view.answers) == 1:
        return "Answer · 1 or Y good, 2 or N bad"
    if len(view.answers) == 2:
        return ("Left · 1 / ←", "Right · 2 / →")[index]
    return f"Answer {index + 1}"


def _render(view: PageView, *, panels: int) -> list:
    """Component updates for `outputs` in `build_page`, in that order."""
    count = len(view.answers)
    pair = count == 2
    single = count == 1
    answer_updates = []
    for i in range(panels):
        if i >= count:
            answer_updates.append(gr.update(value="", visible=False))
            continue
        # An item with more answers than the page has panels (added while serving): the last panel holds the rest.
        shown = range(i, count) if i == panels - 1 else (i,)
        text = "\n\n---\n\n".join(f"#### {_answer_title(view, j)}\n\n{plain_markdown(view.answers[j])}"
                                   for j in shown)
        answer_updates.append(gr.update(value=text, visible=True))
    where = f" · item {view.position + 1} of {view.counts.get('items', '?')}" if view.position is not None else ""
    prompt = f"#### Prompt{where}\n\n{plain_markdown(view.prompt)}" if view.answers else ""
    return [
        view.status,
        _progress_text(view),
        view.guidelines or "_This queue has no guidelines._",
        prompt,
        *answer_updates,
        gr.update(visible=pair),
        gr.update(visible=pair),
        gr.update(visible=count > 1),
        gr.update(visible=count > 1, value="Both bad (4)" if pair or not count else "All bad (4)"),
        gr.update(visible=count > 0),
        gr.update(visible=count > 2, **({"value": ""} if view.saved or count <= 2 else {})),
        gr.update(visible=count > 2),
        gr.update(visible=single),
        gr.update(visible=single),
        "" if view.saved else gr.skip(),
        view.item_id,
        view.to_json(),
    ]
