"""What guards the label server's page when it is shared on a network: a strong access token, a back-off
for whoever keeps guessing it, and untrusted text (prompts and answers from models or imported files)
shown as text, never as Markdown or HTML of its own.

Free of Gradio (the back-off is plain ASGI middleware) so it can be read and tested on its own.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

MIN_TOKEN_LENGTH = 16
MIN_TOKEN_BITS = 64


def token_problem(token: str) -> str | None:
    """Why `token` is too weak to guard a page on a network (a sentence), or None. The estimate is the
    token's length times the Shannon entropy of its characters: "aaaa…" or "1212…" score low whatever
    their length; a generated token (`secrets.token_urlsafe(24)`) scores about 150 bits."""
    counts = Counter(token)
    per_character = -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values()) if token else 0.0
    bits = per_character * len(token)
    if len(token) >= MIN_TOKEN_LENGTH and bits >= MIN_TOKEN_BITS:
        return None
    return (f"the access token is too weak to guard a page on a network ({len(token)} characters, about "
            f"{bits:.0f} bits of randomness; at least {MIN_TOKEN_LENGTH} characters and {MIN_TOKEN_BITS} bits are "
            "needed)")


# Every ASCII punctuation character: CommonMark lets each be backslash-escaped, and escaped it is plain text.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_LEADING_SPACES = re.compile(r"^[ \t]+", re.MULTILINE)


def plain_markdown(text: str) -> str:
    """Markdown that renders as `text` itself: no heading, link, image, HTML, list, table or code of its
    own (every punctuation mark escaped), and indentation kept as no-break spaces (four spaces would
    start a code block, inside which escapes show). For prompts and answers, which come from models and
    files: one must not pass for the page's own headings or make browsers fetch remote images."""
    escaped = _PUNCTUATION.sub(r"\\\1", text)
    return _LEADING_SPACES.sub(lambda m: "\u00a0" * len(m.group(0).expandtabs(4)), escaped)


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0


ASGIApp = Callable[[dict, Callable, Callable], Awaitable[None]]


class LoginBackoff:
    """ASGI middleware in front of the page's log-in: after FREE_ATTEMPTS failed log-ins from one client
    address, each further attempt must wait a delay that doubles with every failure (up to MAX_DELAY_S);
    an attempt inside the delay is answered 429 with Retry-After, without looking at the token. A
    successful log-in clears the address's count."""

    FREE_ATTEMPTS = 5
    FIRST_DELAY_S = 1.0
    MAX_DELAY_S = 300.0
    MAX_CLIENTS = 10_000  # addresses remembered; the oldest are forgotten first

    def __init__(self, app: ASGIApp, clock: Callable[[], float] = time.monotonic):
        self.app = app
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()

    def delay(self, failures: int) -> float:
        if failures < self.FREE_ATTEMPTS:
            return 0.0
        return min(self.FIRST_DELAY_S * 2 ** (failures - self.FREE_ATTEMPTS), self.MAX_DELAY_S)

    def wait_s(self, client: str) -> float:
        """How long `client` must wait before its next log-in attempt is looked at."""
        record = self._failures.get(client)
        if record is None:
            return 0.0
        return max(0.0, record.last + self.delay(record.count) - self.clock())

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if not (scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/login")):
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.wait_s(client)
        if wait > 0:
            await _too_many(send, wait)
            return
        status: dict[str, int] = {}

        async def watched(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watched)
        self._record(client, ok=status.get("code") == 200)

    def _record(self, client: str, ok: bool) -> None:
        if ok:
            self._failures.pop(client, None)
            return
        record = self._failures.pop(client, None) or _Failures()
        record.count += 1
        record.last = self.clock()
        self._failures[client] = record
        while len(self._failures) > self.MAX_CLIENTS:
            self._failures.popitem(last=False)


async def _too_many(send: Callable, wait: float) -> None:
    body = (f'{{"detail": "Too many failed log-ins from this address: try again in {math.ceil(wait)} s."}}').encode()
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait)).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
