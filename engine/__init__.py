"""Atelier's headless engine: job specs, the event protocol, run directories and the training jobs."""

__version__ = "0.1.0"
