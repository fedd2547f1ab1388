"""What the hooks record: the Kedro context as tags, parameters, and dataset references.

Parameters are flattened with dotted keys (``model.lr``). A value is written as text (lists and other
non-scalars as JSON); one too long for a param (8,000 characters) or under a key too long for one (250) is not
cut: the full set of such parameters goes into the run as the artifact ``kedro/long_params.json``, and the
param holds a reference to it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_PARAM = 8000  # the server's limit for a param value
MAX_KEY = 250
LONG_PARAMS = "kedro/long_params.json"
_UNSAFE = re.compile(r"[\x00-\x1f\x7f\\]|//+")
_NOT_PERSISTED = ("MemoryDataset", "SharedMemoryDataset")


@dataclass
class DatasetRef:
    fields: dict[str, str]
    tags: dict[str, str] = field(default_factory=dict)


def kedro_tags(run_params: dict[str, Any], package: str) -> dict[str, str]:
    """The Kedro context of this run: what a user filters runs by."""
    def joined(key: str) -> str:
        return ",".join(str(v) for v in run_params.get(key) or [])

    tags = {"kedro.package": package, "kedro.pipeline": joined("pipeline_names") or "__default__",
            "kedro.env": str(run_params.get("env") or "local"), "kedro.runner": _runner(run_params),
            "kedro.version": str(run_params.get("kedro_version") or ""),
            "kedro.session_id": str(run_params.get("run_id") or ""),
            "kedro.nodes": joined("node_names"), "kedro.tags": joined("tags"),
            "kedro.from_nodes": joined("from_nodes"), "kedro.to_nodes": joined("to_nodes"),
            "kedro.from_inputs": joined("from_inputs"), "kedro.to_outputs": joined("to_outputs"),
            "kedro.namespaces": joined("namespaces")}
    return {k: v for k, v in tags.items() if v}


def _runner(run_params: dict[str, Any]) -> str:
    runner = str(run_params.get("runner") or "SequentialRunner")
    return runner.rsplit(".", 1)[-1].split(" ", 1)[0].strip("<>")


def flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def param_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return str(value)
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def selected(key: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatchcase(key, p) for p in include):
        return False
    return not any(fnmatch.fnmatchcase(key, p) for p in exclude)


def log_parameters(run: Any, params: dict[str, Any], include: list[str], exclude: list[str]) -> None:
    """Every selected parameter, faithfully: long ones go whole into an artifact the param refers to."""
    flat = {k: param_text(v) for k, v in flatten(dict(params or {})).items() if selected(k, include, exclude)}
    short = {k: v for k, v in flat.items() if len(k) <= MAX_KEY and len(v) <= MAX_PARAM and k.strip()}
    long = {k: v for k, v in flat.items() if k not in short}
    for key, value in long.items():
        name = key if len(key) <= MAX_KEY and key.strip() else f"kedro.long_param.{_digest(key)}"
        short[name] = f"see artifact {LONG_PARAMS} ({len(value)} characters)"
    if short:
        run.log_params(short)
    if long:
        with tempfile.TemporaryDirectory(prefix="cairn-kedro-") as tmp:
            path = Path(tmp) / "long_params.json"
            path.write_text(json.dumps(long, indent=1, sort_keys=True), encoding="utf-8")
            run.log_artifact(path, "kedro")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metric_key(prefix: str, name: str, suffix: str) -> str:
    """A metric or tag key for a node: its name made safe for a key (Kedro's generated names hold
    brackets and arrows, fine, and may be long: then a digest keeps them apart)."""
    safe = _UNSAFE.sub("_", name).strip("/") or "_"
    key = f"{prefix}.{safe}" + (f".{suffix}" if suffix else "")
    if len(key) > MAX_KEY:
        key = f"{prefix}.{safe[:MAX_KEY - 60]}~{_digest(name)}" + (f".{suffix}" if suffix else "")
    return key


def pipeline_datasets(pipeline: Any, catalog: Any) -> list[DatasetRef]:
    """References for the datasets the pipeline reads from outside (its free inputs)."""
    refs = []
    for name in sorted(pipeline.inputs()):
        if name == "parameters" or name.startswith("params:"):
            continue
        ref = dataset_reference(catalog, name, "input")
        if ref is not None:
            refs.append(ref)
    return refs


def dataset_reference(catalog: Any, name: str, role: str) -> DatasetRef | None:
    """Name, where it lives, its Kedro version stamp and its type; None for what is never persisted
    (memory datasets) or not in the catalog."""
    if name == "parameters" or name.startswith("params:") or name not in catalog:
        return None
    dataset = catalog[name]
    kind = type(dataset)
    if kind.__name__ in _NOT_PERSISTED:
        return None
    description = _describe(dataset)
    uri = str(description.get("filepath") or description.get("path") or description.get("dataset") or "")
    version = _version(dataset, role)
    type_name = f"{kind.__module__}.{kind.__qualname__}"
    fields = {"name": name, "uri": uri[:4096], "version": version, "role": role}
    return DatasetRef(fields, {metric_key("kedro.dataset", name, "type"): type_name})


def _describe(dataset: Any) -> dict[str, Any]:
    try:
        described = dataset._describe()  # Kedro's own description of a dataset
    except Exception:  # a dataset that cannot describe itself is still referenced
        return {}
    return described if isinstance(described, dict) else {}


def _version(dataset: Any, role: str) -> str:
    """The version stamp of a versioned dataset (``2026-12-02T12.00.00.000Z``), else ''."""
    if getattr(dataset, "_version", None) is None:
        return ""
    try:
        stamp = dataset.resolve_save_version() if role == "output" else dataset.resolve_load_version()
    except Exception:  # no version exists yet (an input never written)
        return ""
    return str(stamp or "")
