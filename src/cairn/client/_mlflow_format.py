"""Models in MLflow's format, loaded through MLflow's python-function flavor.

A model logged with the ``mlflow`` client against a Cairn server, or brought over by ``cairn import mlflow``,
is kept exactly as MLflow wrote it: its folder (``MLmodel``, the flavor's own files, ``requirements.txt``, ...)
is stored with its run, and its manifest says flavor "mlflow" and lists each file's sha256 and size. So it
downloads and verifies like any Cairn model.

Cairn does not reimplement MLflow's flavors (there are dozens, each reading its own files, and they change
with MLflow): it hands the verified folder to ``mlflow.pyfunc.load_model``, which also checks inputs against
the model's MLflow signature. ``mlflow`` is imported only here, and only when such a model is loaded, so
``import cairn`` never needs it; without it, loading says what to install.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from cairn.client._errors import ModelError

__all__ = ["FLAVOR", "INSTALL", "LABEL", "MODULE", "PACKAGE", "input_example", "load", "predict", "refuse_save",
           "requirements"]

FLAVOR = "mlflow"
MODULE = "mlflow.pyfunc"
PACKAGE = "mlflow"
INSTALL = "pip install mlflow (or mlflow-skinny, the client without the server)"
LABEL = "a model in MLflow's format (it loads through mlflow.pyfunc)"
MLMODEL = "MLmodel"
REQUIREMENTS = "requirements.txt"


def load(folder: Path, manifest: dict[str, Any]) -> Any:
    """MLflow's PyFuncModel for a verified model folder; MLflow's refusals become a ModelError."""
    if MLMODEL not in manifest["files"]:
        raise ModelError(f"{folder}: a model in MLflow's format has an {MLMODEL} file, and this one has none")
    pyfunc = importlib.import_module(MODULE)  # the flavor's require() has checked that it imports
    exceptions = importlib.import_module("mlflow.exceptions")
    try:
        return pyfunc.load_model(str(folder))
    except exceptions.MlflowException as exc:
        raise ModelError(f"{folder}: MLflow could not load this model through its python-function flavor: "
                         f"{exc.message}") from exc


def predict(model: Any, data: Any) -> Any:
    return model.predict(data)


def refuse_save(model: object, folder: Path) -> dict[str, Any]:
    raise ModelError("a model in MLflow's format is saved by the mlflow client (mlflow.<flavor>.log_model); "
                     "Cairn stores and loads it")


def requirements(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """The pip requirements MLflow wrote beside the model (``requirements.txt``), comments left out."""
    if REQUIREMENTS not in manifest["files"]:
        return []
    lines = (folder / REQUIREMENTS).read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def input_example(model: Any) -> object | None:
    """The input example MLflow stored with the model, as MLflow reads it back (None when there is none)."""
    return getattr(model, "input_example", None)
