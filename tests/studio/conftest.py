"""Studio tests run the real Qt widgets offscreen (no display needed) against a temporary workspace."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402


@pytest.fixture
def workspace(tmp_path):
    """An empty Atelier workspace (runs/ lives inside it)."""
    ws = tmp_path / "workspace"
    (ws / "runs").mkdir(parents=True)
    return ws


@pytest.fixture
def store(workspace):
    """The studio's store in the workspace, closed after the test."""
    from studio.models.store import Store
    s = Store(workspace / "store.db")
    yield s
    s.close()
