"""The serve loop: requests read from stdin on the main thread, answered on stdout.

Quick requests (models, cancel, unload) are answered at once; loads run one at a time on a loader
thread; generations run on up to `max_active` worker threads that take turns step by step
(engine/serve/generation.py), and wait in arrival order beyond that. So a cancel is read and acted
on while a model loads or an answer streams. Every generate ends with one `done` or one `error`.
"""

from __future__ import annotations

import logging
import threading
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO

from engine import __version__
from engine.errors import UserError
from engine.protocol import PROTOCOL_VERSION
from engine.serve.generation import Generation, Turns, run_generation
from engine.serve.models import GIB, LoadedModel, ModelPool
from engine.serve.protocol import (MAX_REQUEST_BYTES, REQUESTS, CancelRequest, GenerateRequest, LoadRequest,
                                   MessageWriter, ModelsRequest, RequestError, ShutdownRequest, UnloadRequest,
                                   parse_request)

log = logging.getLogger(__name__)


class Server:
    def __init__(self, writer: MessageWriter, pool: ModelPool, max_active: int):
        self.writer = writer
        self.pool = pool
        self.max_active = max_active
        self.turns = Turns()
        self._generations: dict[Any, Generation] = {}  # queued or running, by request id
        self._lock = threading.Lock()
        self._loader = ThreadPoolExecutor(1, thread_name_prefix="serve-load")
        self._workers = ThreadPoolExecutor(max_active, thread_name_prefix="serve-generate")

    def serve(self, stdin: BinaryIO) -> int:
        """Answer requests until `shutdown`, the end of stdin, or an interrupt; 0 when it ended cleanly."""
        shutdown: ShutdownRequest | None = None
        try:
            self.writer.send("ready", v=PROTOCOL_VERSION, engine_version=__version__,
                             device=self.pool.placement.device, precision=self.pool.placement.precision,
                             memory_budget_gib=round(self.pool.budget_bytes / GIB, 4), max_active=self.max_active,
                             ops=list(REQUESTS))
            while shutdown is None and not self.writer.closed.is_set():
                line = stdin.readline(MAX_REQUEST_BYTES + 1)
                if not line:
                    break  # the client closed our stdin: it is gone
                if len(line) > MAX_REQUEST_BYTES and not line.endswith(b"\n"):
                    self._skip_rest_of_line(stdin)
                shutdown = self.handle(line)
        except KeyboardInterrupt:
            log.info("interrupted: stopping")
        self.stop()
        self.writer.send("shutdown", shutdown.id if shutdown else None)
        return 0

    @staticmethod
    def _skip_rest_of_line(stdin: BinaryIO) -> None:
        """Read past the rest of an over-long request line, a piece at a time (it is refused as a whole)."""
        while (piece := stdin.readline(MAX_REQUEST_BYTES)) and not piece.endswith(b"\n"):
            pass

    def handle(self, line: bytes) -> ShutdownRequest | None:
        """Act on one request line. Whatever it holds, the server answers (an `error` for what it cannot
        act on) and goes on serving."""
        try:
            request = parse_request(line)
        except RequestError as e:
            self.writer.error(e)
            return None
        if isinstance(request, ShutdownRequest):
            return request
        if request is not None:
            self._guarded(request.id, self._dispatch, request)
        return None

    def stop(self) -> None:
        """Cancel every generation and wait for their `done`; a load under way finishes first, loads
        still waiting are dropped."""
        with self._lock:
            for generation in self._generations.values():
                generation.cancelled.set()
        self._workers.shutdown(wait=True)
        self._loader.shutdown(wait=True, cancel_futures=True)

    def _dispatch(self, request) -> None:
        if isinstance(request, LoadRequest):
            self._loader.submit(self._guarded, request.id, self._load, request)
        elif isinstance(request, GenerateRequest):
            self._accept(request)
        elif isinstance(request, CancelRequest):
            self._cancel(request)
        elif isinstance(request, UnloadRequest):
            self.pool.unload(request.model_id)
            self.writer.send("unloaded", request.id, model_id=request.model_id, reason="requested")
        elif isinstance(request, ModelsRequest):
            self.writer.send("models", request.id, models=self.pool.describe(),
                             memory_used_gib=round(self.pool.used_bytes / GIB, 4),
                             memory_budget_gib=round(self.pool.budget_bytes / GIB, 4))

    def _load(self, request: LoadRequest) -> None:
        loaded, already = self.pool.load(request.model, self._logger(request.id), self._evicted(request.id))
        self._send_loaded(request.id, loaded, already)

    def _accept(self, request: GenerateRequest) -> None:
        with self._lock:
            if request.id in self._generations:
                raise RequestError(f"A generation with id {request.id!r} is already queued or running (id).",
                                   "Give each generate request its own id.", request.id)
            # Pinned now: a model a queued request names must not be unloaded to make room.
            loaded = self.pool.acquire(request.model_id) if request.model_id is not None else None
            generation = Generation(request)
            self._generations[request.id] = generation
        self._workers.submit(self._guarded, request.id, self._generate, generation, loaded)

    def _generate(self, generation: Generation, loaded: LoadedModel | None) -> None:
        request = generation.request
        done = None
        try:
            if loaded is None and not generation.cancelled.is_set():
                loaded, already = self.pool.load(request.model, self._logger(request.id),
                                                 self._evicted(request.id), pin=True)
                self._send_loaded(request.id, loaded, already)
            if loaded is not None:
                done = run_generation(generation, loaded, self.writer, self.turns, self._logger(request.id))
        finally:
            # Released before `done` is sent: a client that unloads the model on `done` finds it idle.
            if loaded is not None:
                self.pool.release(loaded)
            with self._lock:
                self._generations.pop(request.id, None)
        if done is None:  # cancelled before its model was loaded
            done = {"model_id": None, "text": "", "tokens": 0, "prompt_tokens": 0, "finish": "cancelled",
                    "seed": request.sampling.seed, "ttft_s": None, "tokens_per_s": None}
        self.writer.send("done", request.id, **done)

    def _cancel(self, request: CancelRequest) -> None:
        with self._lock:
            generation = self._generations.get(request.id)
        if generation is None:
            raise RequestError(f"No generation with id {request.id!r} is queued or running (id); it may have "
                               f"finished already.", "Nothing to cancel.", request.id)
        generation.cancelled.set()  # its `done` says finish: cancelled

    def _guarded(self, request_id: Any, work, *args) -> None:
        """Does a request's work (on a worker thread, or at once): whatever fails becomes an `error` line,
        and the server goes on."""
        try:
            work(*args)
        except (RequestError, UserError) as e:
            self.writer.error(e, request_id)
        except Exception as e:  # noqa: BLE001 - a failed request must not end the server
            traceback.print_exc()  # stderr: the engine's log
            out_of_memory = type(e).__name__ == "OutOfMemoryError" or "out of memory" in str(e).lower()
            hint = ("Unload models (op unload), shorten the prompt or max_new_tokens, or start serve with a smaller "
                    "--memory-budget-gib." if out_of_memory else
                    "This looks like a bug in the engine; its stderr has the traceback. Please report it.")
            self.writer.error(RequestError(f"{type(e).__name__}: {e}", hint), request_id)

    def _send_loaded(self, request_id: Any, loaded: LoadedModel, already: bool) -> None:
        self.writer.send("loaded", request_id, **loaded.describe(), already_loaded=already,
                         device=self.pool.placement.device, precision=self.pool.placement.precision)

    def _evicted(self, request_id: Any):
        def send(victim: LoadedModel) -> None:
            self.writer.send("unloaded", request_id, model_id=victim.model_id, reason="evicted")
        return send

    def _logger(self, request_id: Any):
        def send(level: str, message: str) -> None:
            self.writer.send("log", request_id, level=level, message=message)
        return send
