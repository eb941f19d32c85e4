"""Shared test setup: offline, offscreen, and a helper to drive the real engine process."""

from __future__ import annotations

import os

# Before anything imports huggingface_hub or Qt.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("ATELIER_HEARTBEAT_S", "1")
# One torch thread in the tests and in every engine process they start: tiny models gain nothing from
# more, and `make test` runs two test processes that start engines beside each other, where torch's
# default pool (a thread per core, spinning at barriers) slows every one of them many times over.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(session, config, items):
    """Modules marked `long` (minutes of engine runs) first, in their order: `make test` hands whole
    modules to two test processes as they free up, and a long module handed out last would leave one
    process working alone at the end."""
    long_first = sorted(range(len(items)), key=lambda i: (items[i].get_closest_marker("long") is None, i))
    items[:] = [items[i] for i in long_first]
