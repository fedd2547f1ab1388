"""Input examples stored with a model: a DataFrame, an ndarray or JSON data as the document kept in
``input_example.json``, and back.

The document is ``{"type": "dataframe", "columns": [...], "dtypes": [...], "data": [[...], ...]}``,
``{"type": "ndarray", "dtype": "float64", "data": [[...]]}`` or ``{"type": "json", "data": ...}``. JSON has no
NaN or infinities, so in its data NaN (and pandas' NA and NaT) is null and infinities are "Infinity" /
"-Infinity"; dtypes are restored on reading where pandas can rebuild them. pandas and numpy are imported
only to decode an example of their type.
"""

from __future__ import annotations

import datetime as dt
import math
import sys
from collections.abc import Mapping
from typing import Any

from cairn.client._errors import ModelError
from cairn.client._signature import as_ndarray, is_dataframe, require_module

__all__ = ["decode_example", "encode_example"]


def encode_example(example: object) -> dict[str, Any]:
    """An input example as the JSON document stored in input_example.json."""
    if is_dataframe(example):
        frame: Any = example
        return {"type": "dataframe", "columns": [str(c) for c in frame.columns],
                "dtypes": [str(t) for t in frame.dtypes],
                "data": [[_jsonable(v) for v in row] for row in frame.itertuples(index=False, name=None)]}
    array = as_ndarray(example)
    if array is not None:
        return {"type": "ndarray", "dtype": str(array.dtype), "data": _jsonable(array.tolist())}
    return {"type": "json", "data": _jsonable(example)}


def _jsonable(value: object) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    pd = sys.modules.get("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return None
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):  # a numpy scalar
        return _jsonable(value.item())  # type: ignore[attr-defined]
    raise ModelError(f"input_example: cannot store a {type(value).__name__} as JSON")


def decode_example(doc: Mapping[str, Any]) -> object:
    """The input example back from its stored JSON document."""
    kind = doc.get("type")
    if kind == "dataframe":
        pd = require_module("pandas", "pandas", "the input example (a DataFrame)")
        frame = pd.DataFrame(doc["data"], columns=doc["columns"])
        return _restore_dtypes(frame, doc.get("dtypes") or [])
    if kind == "ndarray":
        np = require_module("numpy", "numpy", "the input example (an ndarray)")
        return np.array(doc["data"], dtype=doc["dtype"])
    return doc.get("data")


def _restore_dtypes(frame: Any, dtypes: list[str]) -> Any:
    for i, dtype in enumerate(dtypes[:frame.shape[1]]):
        try:
            frame.isetitem(i, frame.iloc[:, i].astype(dtype))
        except (TypeError, ValueError):
            continue  # a dtype this pandas cannot rebuild from JSON: keep what pandas inferred
    return frame
