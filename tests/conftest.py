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
