"""Talking to engines: processes, event streams, and (later) SSH profiles."""

from studio.client.engine import (
    EngineCommand,
    EventStream,
    LocalEngine,
    ProcessExit,
    engine_environment,
)

__all__ = ["EngineCommand", "EventStream", "LocalEngine", "ProcessExit", "engine_environment"]
