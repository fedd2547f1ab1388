"""Model signatures: what a model takes and returns, and checking inputs against it.

A signature is stored in a model folder's MODEL.json as ``{"inputs": <schema>, "outputs": <schema>}``
(either side may be null). A schema is a small JSON dict, one of:

    {"type": "dataframe", "columns": [{"name": "age", "type": "long"}, {"name": "income", "type": "double"}]}
    {"type": "tensor", "dtype": "float64", "shape": [-1, 4]}     -1 is any size (the first dimension always is)
    {"type": "json"}                                             anything; not checked

Column types are logical, independent of pandas or numpy: boolean, long, double, string, datetime,
binary and object (anything else, or a mix). A list of dicts (records) and a dict of scalars (one row)
have dataframe schemas too; a list of numbers or nested lists is a tensor when numpy is installed.

Checking is strict where a silent conversion could change meaning and lenient where it cannot: a long
column where a double is expected is accepted (and converted), a double where a long is expected is not;
columns the schema does not name are ignored; nulls fit any column type.
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from cairn.client._errors import MissingDependencyError, ModelError, SignatureMismatchError

__all__ = [
    "LOGICAL_TYPES",
    "ModelError",
    "SignatureMismatchError",
    "check_input",
    "infer_schema",
    "infer_signature",
    "require_module",
    "validate_signature",
]

LOGICAL_TYPES = ("boolean", "long", "double", "string", "datetime", "binary", "object")
SCHEMA_TYPES = ("dataframe", "tensor", "json")

_BY_KIND = {"b": "boolean", "i": "long", "u": "long", "f": "double", "M": "datetime", "U": "string", "S": "binary"}


# ---- looking at data without importing pandas or numpy ------------------------------------------------


def _loaded(name: str) -> Any | None:
    """The module if it is already imported (an object of its types cannot exist otherwise)."""
    return sys.modules.get(name)


def _optional(name: str) -> Any | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def require_module(module: str, package: str, needed_by: str, install: str | None = None) -> Any:
    """Import ``module``, or raise MissingDependencyError saying what to pip install (the model's packages are
    imported only when a model needs them, so ``import cairn`` stays light)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError.for_package(package, needed_by, install) from exc


def is_dataframe(obj: object) -> bool:
    pd = _loaded("pandas")
    return pd is not None and isinstance(obj, pd.DataFrame)


def as_ndarray(obj: object) -> Any | None:
    """A numpy array for an ndarray or array-like object (a tensor, a Series), else None. Lists are not arrays."""
    np = _loaded("numpy")
    if np is None or isinstance(obj, (list, tuple, dict, str, bytes)) or not hasattr(obj, "__array__"):
        return None
    if isinstance(obj, np.ndarray):
        return obj
    detach = getattr(obj, "detach", None)  # a torch tensor that requires grad refuses __array__
    array = np.asarray(detach().cpu() if callable(detach) else obj)
    return array if array.ndim > 0 else None


def _is_null(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    pd = _loaded("pandas")
    if pd is not None and (value is pd.NA or value is pd.NaT):
        return True
    np = _loaded("numpy")
    return np is not None and isinstance(value, (np.floating, np.datetime64)) and bool(np.isnan(value))


def _is_scalar(value: object) -> bool:
    return not isinstance(value, (list, tuple, dict, set)) and getattr(value, "ndim", 0) == 0


def value_type(value: object) -> str | None:
    """The logical type of one value; None for a null."""
    if _is_null(value):
        return None
    for types, name in _PYTHON_TYPES:
        if isinstance(value, types):
            return name
    np = _loaded("numpy")
    if np is not None and isinstance(value, np.generic):
        return _BY_KIND.get(value.dtype.kind, "object")
    return "object"


_PYTHON_TYPES: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "boolean"), (int, "long"), (float, "double"), (str, "string"),
    ((bytes, bytearray), "binary"), ((dt.datetime, dt.date), "datetime"),
)


def _combine(types: Iterable[str | None]) -> str | None:
    found = {t for t in types if t is not None}
    if len(found) <= 1:
        return found.pop() if found else None
    return "double" if found == {"long", "double"} else "object"


def _column_type(series: Any) -> str | None:
    kind = getattr(series.dtype, "kind", "O")
    if kind in _BY_KIND:
        return _BY_KIND[kind]
    return _combine(value_type(v) for v in series.tolist())


def as_rows(data: object) -> list[dict[str, Any]] | None:
    """Records for a list of dicts or a dict of scalars (one row); None for anything else."""
    if isinstance(data, Mapping):
        if data and all(isinstance(k, str) for k in data) and all(_is_scalar(v) for v in data.values()):
            return [dict(data)]
        return None
    if isinstance(data, (list, tuple)) and data and all(isinstance(row, Mapping) for row in data):
        return [dict(row) for row in data]
    return None


# ---- inference -----------------------------------------------------------------------------------------


def infer_schema(example: object) -> dict[str, Any]:
    """The schema of an example input or output (see the module docstring)."""
    if is_dataframe(example):
        return _frame_schema(example)
    array = as_ndarray(example)
    if array is not None:
        return _tensor_schema(array)
    rows = as_rows(example)
    if rows is not None:
        return _rows_schema(rows)
    if isinstance(example, (list, tuple)) and example:
        return _list_schema(example)
    return {"type": "json"}


def infer_signature(inputs: object, outputs: object = None) -> dict[str, Any]:
    """``{"inputs": ..., "outputs": ...}`` from an example input and, optionally, the model's output for it."""
    return {"inputs": infer_schema(inputs), "outputs": None if outputs is None else infer_schema(outputs)}


def _frame_schema(frame: Any) -> dict[str, Any]:
    columns = [{"name": str(name), "type": _column_type(frame.iloc[:, i]) or "object"}
               for i, name in enumerate(frame.columns)]
    return {"type": "dataframe", "columns": columns}


def _tensor_schema(array: Any) -> dict[str, Any]:
    return {"type": "tensor", "dtype": str(array.dtype), "shape": [-1, *(int(n) for n in array.shape[1:])]}


def _rows_schema(rows: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(dict.fromkeys(name for row in rows for name in row))
    columns = [{"name": name, "type": _combine(value_type(row.get(name)) for row in rows) or "object"}
               for name in names]
    return {"type": "dataframe", "columns": columns}


def _list_schema(values: list[Any] | tuple[Any, ...]) -> dict[str, Any]:
    np = _optional("numpy")
    if np is None:
        return {"type": "json"}
    try:
        array = np.asarray(values)
    except ValueError:  # ragged nesting
        return {"type": "json"}
    return {"type": "json"} if array.dtype.kind == "O" else _tensor_schema(array)


def validate_signature(signature: object) -> dict[str, Any]:
    """A signature given by a caller, checked and normalised to ``{"inputs": ..., "outputs": ...}``."""
    if not isinstance(signature, Mapping) or "inputs" not in signature:
        raise ModelError('signature must be a dict {"inputs": <schema>, "outputs": <schema or None>}')
    unknown = set(signature) - {"inputs", "outputs"}
    if unknown:
        raise ModelError(f"signature has unknown keys {sorted(unknown)}; expected 'inputs' and 'outputs'")
    for side in ("inputs", "outputs"):
        schema = signature.get(side)
        if schema is not None and (not isinstance(schema, Mapping) or schema.get("type") not in SCHEMA_TYPES):
            raise ModelError(f"signature {side}: a schema is a dict whose 'type' is one of {', '.join(SCHEMA_TYPES)}")
    return {"inputs": signature.get("inputs"), "outputs": signature.get("outputs")}


# ---- checking ------------------------------------------------------------------------------------------


def check_input(schema: Mapping[str, Any], data: object, *, convert: bool = True) -> object:
    """Check ``data`` against an input schema; raise SignatureMismatchError, or return the data.

    With ``convert`` (the default) the data comes back in the schema's form where that is safe: records become
    a DataFrame (if pandas is installed) holding the schema's columns in its order, long columns that should
    be double become float64, lists become ndarrays of the schema's dtype. With ``convert=False`` it is only
    checked and comes back as given.
    """
    kind = schema.get("type")
    if kind == "tensor":
        return _check_tensor(schema, data, convert=convert)
    if kind == "dataframe":
        return _check_dataframe(schema, data, convert=convert)
    return data


def _compatible(expected: str, actual: str | None) -> bool:
    if actual is None or expected in (actual, "object") or expected not in LOGICAL_TYPES:
        return True
    return expected == "double" and actual == "long"


def _mismatch(column: str, expected: str, actual: str | None, where: str = "") -> SignatureMismatchError:
    return SignatureMismatchError(f"column {column!r}: expected {expected}, got {actual}{where}",
                                  column=column, expected=expected)


def _missing(columns: list[Mapping[str, Any]]) -> SignatureMismatchError:
    noun = "column" if len(columns) == 1 else "columns"
    listed = ", ".join(f"{c['name']!r} (expected {c['type']})" for c in columns)
    return SignatureMismatchError(f"missing {noun} {listed}", column=columns[0]["name"], expected=columns[0]["type"])


def _check_dataframe(schema: Mapping[str, Any], data: object, *, convert: bool) -> object:
    columns: list[Mapping[str, Any]] = list(schema.get("columns") or [])
    if is_dataframe(data):
        _check_frame(columns, data)
        return _conform(columns, data) if convert else data
    rows = as_rows(data)
    if rows is None:
        names = ", ".join(repr(c["name"]) for c in columns)
        raise SignatureMismatchError(f"input: expected a dataframe with columns {names}, got {type(data).__name__}",
                                     expected="dataframe")
    _check_rows(columns, rows)
    pd = _optional("pandas") if convert else None
    return data if pd is None else _conform(columns, pd.DataFrame(rows))


def _check_frame(columns: list[Mapping[str, Any]], frame: Any) -> None:
    labels = {str(label): label for label in frame.columns}
    missing = [c for c in columns if c["name"] not in labels]
    if missing:
        raise _missing(missing)
    for column in columns:
        actual = _column_type(frame[labels[column["name"]]])
        if not _compatible(column["type"], actual):
            raise _mismatch(column["name"], column["type"], actual)


def _check_rows(columns: list[Mapping[str, Any]], rows: list[dict[str, Any]]) -> None:
    present = {name for row in rows for name in row}
    missing = [c for c in columns if c["name"] not in present]
    if missing:
        raise _missing(missing)
    for column in columns:
        for i, row in enumerate(rows):
            actual = value_type(row.get(column["name"]))
            if not _compatible(column["type"], actual):
                raise _mismatch(column["name"], column["type"], actual, f" (row {i})" if len(rows) > 1 else "")


def _conform(columns: list[Mapping[str, Any]], frame: Any) -> Any:
    """The schema's columns, in its order, with long columns that should be double made float64."""
    if not columns:
        return frame
    labels = {str(label): label for label in frame.columns}
    selected = frame[[labels[c["name"]] for c in columns]]
    casts = {labels[c["name"]]: "float64" for c in columns
             if c["type"] == "double" and _column_type(frame[labels[c["name"]]]) == "long"}
    return selected.astype(casts) if casts else selected


def _describe(schema: Mapping[str, Any]) -> str:
    shape = schema.get("shape")
    return "tensor" + (f" of shape {list(shape)}" if shape is not None else "")


def _check_tensor(schema: Mapping[str, Any], data: object, *, convert: bool) -> object:
    np = _optional("numpy")
    if np is None:  # nothing can hold a tensor without numpy; leave it to the model
        return data
    array = _to_array(np, schema, data)
    shape = schema.get("shape")
    if shape is not None and (array.ndim != len(shape) or any(
            want >= 0 and want != got for want, got in zip(shape, array.shape, strict=True))):
        raise SignatureMismatchError(f"input: expected {_describe(schema)}, got shape {tuple(array.shape)}",
                                     expected=_describe(schema))
    array = _cast(np, schema, array)
    return array if convert else data


def _to_array(np: Any, schema: Mapping[str, Any], data: object) -> Any:
    array = as_ndarray(data)
    if array is not None:
        return array
    if is_dataframe(data):
        return data.to_numpy()  # type: ignore[attr-defined]
    if isinstance(data, (list, tuple)):
        try:
            return np.asarray(data)
        except ValueError:
            raise SignatureMismatchError(f"input: expected {_describe(schema)}, got a ragged list",
                                         expected=_describe(schema)) from None
    raise SignatureMismatchError(f"input: expected {_describe(schema)}, got {type(data).__name__}",
                                 expected=_describe(schema))


def _cast(np: Any, schema: Mapping[str, Any], array: Any) -> Any:
    """The array in the schema's dtype: same dtype, strings of another width, safe casts, or anything numeric
    into floats (int -> float, float64 -> float32); never float -> int."""
    try:
        want = np.dtype(schema.get("dtype") or "object")
    except TypeError:  # a dtype this numpy does not know: do not judge
        return array
    have = array.dtype
    if have == want or want.kind == "O" or (have.kind == want.kind and want.kind in "US"):
        return array
    if np.can_cast(have, want, "safe") or (want.kind == "f" and np.can_cast(have, want, "same_kind")):
        return array.astype(want)
    raise SignatureMismatchError(f"input: expected tensor of dtype {want}, got {have}", expected=str(want))
