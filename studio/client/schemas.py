"""The job-spec schema of each engine, asked of the engine itself and kept per engine and hash.

Wizards build their forms from `schema(engine)` and re-build them when `changed(engine)` says the
engine answered with another schema than the one they show. Until an engine has answered, the
schema is the one it gave last time (the store keeps each engine's schemas by hash), or, for an
engine never asked, this studio's own.
"""

from __future__ import annotations

import logging
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.models.engine_schema import EngineSchema, own_schema, schema_differences, schema_hash

log = logging.getLogger(__name__)


class EngineSchemas(QObject):
    """Signals: `changed(engine)` — `schema(engine)` is now another schema; `failed(engine, message)`."""

    changed = Signal(str)
    failed = Signal(str, str)

    def __init__(self, engines: dict[str, Any], store: Any = None, parent: QObject | None = None):
        super().__init__(parent)
        self.engines = engines  # the tracker's: name -> engine
        self.store = store
        self._schemas: dict[str, EngineSchema] = {}
        self._asked: dict[str, Any] = {}  # engine -> its `schema` command running
        self._answered: set[str] = set()

    def schema(self, engine: str) -> EngineSchema:
        """The schema `engine` accepts, as far as known now."""
        if engine not in self._schemas:
            text = self.store.cached_schema(engine) if self.store is not None else None
            self._schemas[engine] = EngineSchema(text) if text else own_schema()
        return self._schemas[engine]

    def answered(self, engine: str) -> bool:
        """Whether `engine` itself gave the schema `schema(engine)` is (this session)."""
        return engine in self._answered

    def differences(self, engine: str) -> list[str]:
        """How the specs `engine` accepts differ from this studio's own, one sentence each."""
        return schema_differences(own_schema(), self.schema(engine), f"the engine '{engine}'")

    def refresh(self, engine: str, expected_hash: str | None = None) -> None:
        """Ask `engine` for its schema, unless it answered this session with `expected_hash` (or with
        any schema, when no hash is given) or the store has the schema of that hash."""
        current = self._schemas.get(engine)
        if engine in self._answered and (expected_hash is None or (current and current.hash == expected_hash)):
            return
        if expected_hash and self.store is not None:
            text = self.store.cached_schema(engine, expected_hash)
            if text and schema_hash(text) == expected_hash:  # the hash is of the text kept
                self._answered.add(engine)
                self._use(engine, EngineSchema(text))
                return
        if engine in self._asked or engine not in self.engines:
            return
        command = self.engines[engine].schema()
        self._asked[engine] = command
        command.succeeded.connect(lambda text, name=engine: self._got(name, text))
        command.failed.connect(lambda message, name=engine: self._failed(name, message))

    def _got(self, engine: str, text: Any) -> None:
        self._asked.pop(engine, None)
        try:
            schema = EngineSchema(text)
            schema.kinds  # noqa: B018 - parse now: a broken answer is reported here, not in a wizard
        except (TypeError, ValueError) as exc:
            self._failed(engine, f"The engine '{engine}' answered `schema` with something that is not a JSON "
                                 f"schema ({exc}).")
            return
        if self.store is not None:
            self.store.cache_schema(engine, schema.hash, schema.text)
        self._answered.add(engine)
        self._use(engine, schema)

    def _use(self, engine: str, schema: EngineSchema) -> None:
        before = self._schemas.get(engine)
        self._schemas[engine] = schema
        if before is None or before.hash != schema.hash:
            self.changed.emit(engine)

    def _failed(self, engine: str, message: str) -> None:
        self._asked.pop(engine, None)
        log.warning("schema of %s: %s", engine, message)
        self.failed.emit(engine, message)
