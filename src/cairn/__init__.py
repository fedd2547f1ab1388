"""Cairn: experiment tracking, model registry and collaboration."""

__version__ = "0.1.0"
