"""Catalog datasets that log to the pipeline's run and load from Cairn.

They hold configuration only (no connection, no run object), so they pickle cleanly into ParallelRunner's
workers; each save or load finds the run through :mod:`runtime` in the process it runs in. What they write
to Cairn is guarded: if tracking fails the save still succeeds locally (a warning says what was not logged).
"""

from __future__ import annotations

import pickle  # the local fallback copy of a model this process wrote itself
import tempfile
from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from cairn.integrations.kedro import runtime


def _pipeline_run() -> Any:
    """The run to log to: the pipeline's, else the SDK's active run (a dataset used in a notebook)."""
    run = runtime.current_run()
    if run is None:
        import cairn

        run = cairn.active_run()
    return run


def _client() -> Any:
    import cairn

    return cairn.Client()


class ArtifactDataset(AbstractDataset[Any, Any]):
    """Wraps any file-based Kedro dataset: a save writes the file as the wrapped dataset does, then logs it
    as a new version of ``<artifact_path>/<file name>`` in the run. A load reads the local file; with
    ``run_id`` and/or ``version``, or when the file is not here (another machine, an orchestrator's task),
    it downloads that version (the latest by default) from the run first."""

    def __init__(self, *, dataset: dict[str, Any] | str, artifact_path: str = "", run_id: str | None = None,
                 version: int | None = None, metadata: dict[str, Any] | None = None) -> None:
        self._config = {"type": dataset} if isinstance(dataset, str) else dict(dataset)
        if "filepath" not in self._config and "path" not in self._config:
            raise DatasetError("ArtifactDataset wraps a file-based dataset: its 'dataset' needs a filepath")
        self._dataset = AbstractDataset.from_config("cairn_artifact", self._config)
        self._artifact_path = artifact_path.strip("/")
        self._run_id, self._version = run_id, version
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"dataset": self._config.get("type"), "filepath": self._local_path().as_posix(),
                "artifact_path": self._artifact_path, "run_id": self._run_id, "version": self._version}

    def _local_path(self) -> Path:
        return Path(str(self._config.get("filepath") or self._config.get("path")))

    def _saved_path(self) -> Path:
        """Where the wrapped dataset wrote: its versioned path when it is versioned."""
        getter = getattr(self._dataset, "_get_save_path", None)
        if getattr(self._dataset, "_version", None) is not None and getter is not None:
            return Path(str(getter()))
        return self._local_path()

    def _artifact(self) -> str:
        name = self._local_path().name
        return f"{self._artifact_path}/{name}" if self._artifact_path else name

    def save(self, data: Any) -> None:
        self._dataset.save(data)
        path = self._saved_path()
        with runtime.guard(f"log artifact {self._artifact()}"):
            run = _pipeline_run()
            if run is None:
                raise RuntimeError("no Cairn run is active")
            target = self._artifact()
            folder = target.rsplit("/", 1)[0] if "/" in target else None
            if path.is_dir():
                run.log_artifacts(path, target)
            elif path.name == self._local_path().name:
                run.log_artifact(path, folder)
            else:  # a versioned save: the file is <name>/<stamp>/<name>; keep the artifact's name
                with tempfile.TemporaryDirectory(prefix="cairn-kedro-") as tmp:
                    copy = Path(tmp) / self._local_path().name
                    copy.write_bytes(path.read_bytes())
                    run.log_artifact(copy, folder)

    def load(self) -> Any:
        if self._run_id is None and self._version is None and self._dataset.exists():
            return self._dataset.load()
        run_id = self._run_id or getattr(_pipeline_run(), "id", None)
        if run_id is None:
            raise DatasetError(f"{self._artifact()}: no local file and no Cairn run to download it from")
        tmp = Path(tempfile.mkdtemp(prefix="cairn-kedro-"))
        local = Path(_client().download_artifact(run_id, self._artifact(), tmp, version=self._version))
        config = {**self._config, "filepath": local.as_posix()}
        config.pop("path", None) if "filepath" in self._config else config.update(path=local.as_posix())
        config.pop("versioned", None)
        return AbstractDataset.from_config("cairn_artifact_download", config).load()

    def _exists(self) -> bool:
        return bool(self._dataset.exists())


class MetricsDataset(AbstractDataset[dict[str, Any], dict[str, float]]):
    """Saves a dict of metrics to the run: ``{"acc": 0.9}``, ``{"acc": {"value": 0.9, "step": 3}}`` or
    ``{"loss": [{"value": 0.5, "step": 0}, {"value": 0.4, "step": 1}]}``; ``step`` gives a default step and
    ``prefix`` is put before every key (``prefix.acc``). Loads the last value of each of those metrics."""

    def __init__(self, *, prefix: str = "", step: int | None = None, run_id: str | None = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self._prefix, self._step, self._run_id = prefix, step, run_id
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"prefix": self._prefix, "step": self._step, "run_id": self._run_id}

    def _key(self, key: str) -> str:
        return f"{self._prefix}.{key}" if self._prefix else key

    def save(self, data: dict[str, Any]) -> None:
        if not isinstance(data, dict):
            raise DatasetError(f"MetricsDataset saves a dict of metric values, got {type(data).__name__}")
        points = [(self._key(str(k)), value, step) for k, v in data.items() for value, step in self._points(k, v)]
        with runtime.guard("log metrics"):
            run = _pipeline_run() if self._run_id is None else _resumed(self._run_id)
            if run is None:
                raise RuntimeError("no Cairn run is active")
            for key, value, step in points:
                run.log_metric(key, value, step=step)

    def _points(self, key: Any, value: Any) -> list[tuple[float, int | None]]:
        items = value if isinstance(value, list) else [value]
        points = []
        for item in items:
            if isinstance(item, dict):
                if "value" not in item:
                    raise DatasetError(f"metric {key!r}: a point is {{value, step?}}, got keys {sorted(item)}")
                points.append((float(item["value"]), item.get("step", self._step)))
            else:
                points.append((float(item), self._step))
        return points

    def load(self) -> dict[str, float]:
        run_id = self._run_id or getattr(_pipeline_run(), "id", None)
        if run_id is None:
            raise DatasetError("MetricsDataset: no Cairn run to read metrics from")
        metrics = _client().get_run(run_id).metrics
        prefix = f"{self._prefix}." if self._prefix else ""
        return {k[len(prefix):]: float(s.last) for k, s in metrics.items() if k.startswith(prefix)}

    def _exists(self) -> bool:
        return False


def _resumed(run_id: str) -> Any:
    import cairn

    return cairn.start_run(run_id=run_id, nested=False)


class ModelDataset(AbstractDataset[Any, Any]):
    """Save: ``log_model`` into the run (flavor, signature from an input example, requirements) and, with
    ``registered_model_name``, register it with ``tags`` and ``aliases`` in the same call. To give an input
    example, save ``{"model": model, "input_example": rows}``. Load: from ``model_uri`` (``models:/...`` or
    ``runs:/...``), else from ``run_id`` or this run; the native object (the estimator) unless
    ``unwrap: false`` (then Cairn's loaded model, whose ``predict`` checks the signature).

    A model that could not be logged (server away) is kept in a local copy so the pipeline's later nodes
    can still load it in this run."""

    # the catalog entry's options are keyword-only: their count is no trap
    def __init__(self, *, flavor: str | None = None, name: str = "model", registered_model_name: str | None = None,  # noqa: PLR0913
                 aliases: list[str] | None = None, tags: dict[str, str] | None = None,
                 requirements: list[str] | None = None, signature: dict[str, Any] | None = None,
                 run_id: str | None = None, model_uri: str | None = None, unwrap: bool = True,
                 metadata: dict[str, Any] | None = None) -> None:
        self._flavor, self._name = flavor, name
        self._registered, self._aliases, self._tags = registered_model_name, list(aliases or []), dict(tags or {})
        self._requirements, self._signature = requirements, signature
        self._run_id, self._model_uri, self._unwrap = run_id, model_uri, unwrap
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"flavor": self._flavor, "name": self._name, "registered_model_name": self._registered,
                "aliases": self._aliases, "run_id": self._run_id, "model_uri": self._model_uri}

    def save(self, data: Any) -> None:
        model, example = data, None
        if isinstance(data, dict) and set(data) <= {"model", "input_example"} and "model" in data:
            model, example = data["model"], data.get("input_example")
        run = runtime.guarded("find the Cairn run", _pipeline_run)
        self._keep_local(run, model)
        with runtime.guard(f"log model {self._name}"):
            if run is None:
                raise RuntimeError("no Cairn run is active")
            run.log_model(model, self._name, flavor=self._flavor, input_example=example, signature=self._signature,
                          requirements=self._requirements, registered_model_name=self._registered,
                          tags=self._tags or None, aliases=self._aliases or None)

    def load(self) -> Any:
        if self._model_uri is not None:
            return _unwrapped(_client().load_model(self._model_uri), unwrap=self._unwrap)
        run_id = self._run_id or getattr(_pipeline_run(), "id", None)
        if run_id is None:
            raise DatasetError(f"model {self._name!r}: no model_uri, run_id or Cairn run to load it from")
        try:
            return _unwrapped(_client().load_model(f"runs:/{run_id}/{self._name}"), unwrap=self._unwrap)
        except Exception as exc:
            local = _local_copy(run_id, self._name)
            if not local.exists():
                raise DatasetError(f"model {self._name!r} of run {run_id}: {exc}") from exc
            runtime.log.warning("cairn: model %s loaded from this run's local copy: %s", self._name, exc)
            with local.open("rb") as handle:
                return pickle.load(handle)  # noqa: S301 - written by this pipeline run, in this machine's temp

    def _keep_local(self, run: Any, model: Any) -> None:
        if run is None:
            return
        with runtime.guard(f"keep a local copy of model {self._name}"):
            local = _local_copy(run.id, self._name)
            local.parent.mkdir(parents=True, exist_ok=True)
            with local.open("wb") as handle:
                pickle.dump(model, handle)

    def _exists(self) -> bool:
        return False


def _local_copy(run_id: str, name: str) -> Path:
    return Path(tempfile.gettempdir()) / "cairn-kedro-models" / run_id / f"{name.replace('/', '_')}.pickle"


def _unwrapped(loaded: Any, *, unwrap: bool) -> Any:
    return loaded.raw if unwrap else loaded


class RegistryModelDataset(AbstractDataset[Any, Any]):
    """Load-only: a registered model by ``model_uri`` (``models:/prod.churn@champion``,
    ``models:/dev.churn/3``), or by ``name`` with ``alias`` or ``version``. Kedro's environments pick the
    registry (``conf/prod/catalog.yml`` points at ``prod.churn``)."""

    def __init__(self, *, model_uri: str | None = None, name: str | None = None, alias: str | None = None,
                 version: int | None = None, unwrap: bool = True, metadata: dict[str, Any] | None = None) -> None:
        if model_uri is None:
            if name is None or (alias is None) == (version is None):
                raise DatasetError("RegistryModelDataset needs model_uri, or name with either alias or version")
            model_uri = f"models:/{name}@{alias}" if alias is not None else f"models:/{name}/{int(version or 0)}"
        if not model_uri.startswith("models:/"):
            raise DatasetError(f"RegistryModelDataset loads registered models (models:/...), got {model_uri!r}")
        self._model_uri, self._unwrap = model_uri, unwrap
        self.metadata = metadata

    def _describe(self) -> dict[str, Any]:
        return {"model_uri": self._model_uri}

    def load(self) -> Any:
        return _unwrapped(_client().load_model(self._model_uri), unwrap=self._unwrap)

    def save(self, data: Any) -> None:
        raise DatasetError(f"RegistryModelDataset is load-only ({self._model_uri}): log models with ModelDataset")

    def _exists(self) -> bool:
        return True
