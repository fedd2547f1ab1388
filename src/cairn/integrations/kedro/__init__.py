"""Cairn for Kedro: one Cairn run per pipeline run, datasets that log to it, registry models in the catalog.

Installed with the ``kedro`` extra, the hooks register themselves through Kedro's ``kedro.hooks`` entry point
and ``kedro cairn init`` through ``kedro.project_commands``. Catalog entries name the datasets by their path
here (``type: cairn.integrations.kedro.ArtifactDataset``). Names are resolved lazily (PEP 562), so that Kedro
loading the plugin at start-up imports neither the SDK nor the datasets.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "ArtifactDataset": "cairn.integrations.kedro.datasets",
    "MetricsDataset": "cairn.integrations.kedro.datasets",
    "ModelDataset": "cairn.integrations.kedro.datasets",
    "RegistryModelDataset": "cairn.integrations.kedro.datasets",
    "CairnHooks": "cairn.integrations.kedro.hooks",
    "hooks": "cairn.integrations.kedro.hooks",
    "CairnSettings": "cairn.integrations.kedro.config",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(module), name)


def __dir__() -> list[str]:
    return __all__
