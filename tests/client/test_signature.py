"""Signature inference and input checking (cairn.client._signature)."""

from __future__ import annotations

import datetime as dt
import sys

import numpy as np
import pandas as pd
import pytest

from cairn.client._errors import CairnError
from cairn.client._signature import (
    ModelError,
    SignatureMismatchError,
    check_input,
    infer_schema,
    infer_signature,
    validate_signature,
)

PEOPLE = {"type": "dataframe", "columns": [{"name": "age", "type": "long"}, {"name": "income", "type": "double"}]}
MATRIX = {"type": "tensor", "dtype": "float64", "shape": [-1, 4]}


# ---- inference ----------------------------------------------------------------------------------------


def test_dataframe_schema_uses_logical_types() -> None:
    frame = pd.DataFrame({
        "age": [31, 42], "income": [1.5, 2.0], "name": ["ann", "bo"], "member": [True, False],
        "joined": pd.to_datetime(["2024-01-01", "2024-02-01"]), "blob": [b"a", b"b"], "mixed": [1, "x"],
        "maybe": pd.array([1, None], dtype="Int64"),
    })
    assert infer_schema(frame) == {"type": "dataframe", "columns": [
        {"name": "age", "type": "long"}, {"name": "income", "type": "double"}, {"name": "name", "type": "string"},
        {"name": "member", "type": "boolean"}, {"name": "joined", "type": "datetime"},
        {"name": "blob", "type": "binary"}, {"name": "mixed", "type": "object"}, {"name": "maybe", "type": "long"},
    ]}


def test_ndarray_schema_has_any_first_dimension() -> None:
    assert infer_schema(np.zeros((3, 4))) == {"type": "tensor", "dtype": "float64", "shape": [-1, 4]}
    assert infer_schema(np.arange(5, dtype="int32")) == {"type": "tensor", "dtype": "int32", "shape": [-1]}


def test_records_schema_is_a_dataframe_schema() -> None:
    rows = [{"age": 31, "name": "ann"}, {"age": 40.5, "name": "bo", "when": dt.datetime(2024, 1, 1)}]
    assert infer_schema(rows) == {"type": "dataframe", "columns": [
        {"name": "age", "type": "double"}, {"name": "name", "type": "string"}, {"name": "when", "type": "datetime"},
    ]}


def test_dict_of_scalars_is_one_row() -> None:
    assert infer_schema({"age": 31, "ok": True}) == {"type": "dataframe", "columns": [
        {"name": "age", "type": "long"}, {"name": "ok", "type": "boolean"}]}


def test_lists_become_tensors_when_numpy_can_hold_them() -> None:
    assert infer_schema([1, 2, 3]) == {"type": "tensor", "dtype": "int64", "shape": [-1]}
    assert infer_schema([[1.0, 2.0], [3.0, 4.0]]) == {"type": "tensor", "dtype": "float64", "shape": [-1, 2]}
    assert infer_schema([[1, 2], [3]]) == {"type": "json"}  # ragged
    assert infer_schema(["a", {"b": 1}]) == {"type": "json"}


def test_lists_are_json_without_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert infer_schema([1, 2, 3]) == {"type": "json"}


@pytest.mark.parametrize("example", [3, "text", None, [], {"a": [1, 2]}, object()])
def test_scalars_and_others_are_json(example: object) -> None:
    assert infer_schema(example) == {"type": "json"}


def test_infer_signature_pairs_inputs_and_outputs() -> None:
    assert infer_signature(np.zeros((2, 4)), np.zeros(2)) == {
        "inputs": MATRIX, "outputs": {"type": "tensor", "dtype": "float64", "shape": [-1]}}
    assert infer_signature([{"a": 1}])["outputs"] is None


# ---- checking dataframes ------------------------------------------------------------------------------


def test_missing_column_is_named_with_its_type() -> None:
    with pytest.raises(SignatureMismatchError, match=r"^missing column 'income' \(expected double\)$") as info:
        check_input(PEOPLE, pd.DataFrame({"age": [1]}))
    assert info.value.column == "income"
    assert info.value.expected == "double"


def test_several_missing_columns_are_all_named() -> None:
    with pytest.raises(SignatureMismatchError, match=r"missing columns 'age' \(expected long\), 'income'"):
        check_input(PEOPLE, pd.DataFrame({"other": [1]}))


def test_wrong_column_type_names_column_and_types() -> None:
    frame = pd.DataFrame({"age": ["old"], "income": [1.0]})
    with pytest.raises(SignatureMismatchError, match=r"^column 'age': expected long, got string$"):
        check_input(PEOPLE, frame)


def test_float_is_not_accepted_for_long() -> None:
    with pytest.raises(SignatureMismatchError, match="column 'age': expected long, got double"):
        check_input(PEOPLE, pd.DataFrame({"age": [1.0], "income": [1.0]}))


def test_int_column_is_converted_for_double() -> None:
    out = check_input(PEOPLE, pd.DataFrame({"age": [1, 2], "income": [3, 4]}))
    assert isinstance(out, pd.DataFrame)
    assert out["income"].dtype == np.float64
    assert out["income"].tolist() == [3.0, 4.0]
    assert out["age"].dtype == np.int64


def test_extra_columns_are_ignored_and_order_follows_schema() -> None:
    frame = pd.DataFrame({"extra": ["x"], "income": [2.0], "age": [3]})
    out = check_input(PEOPLE, frame)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["age", "income"]
    assert check_input(PEOPLE, frame, convert=False) is frame


def test_records_become_a_dataframe() -> None:
    out = check_input(PEOPLE, [{"age": 3, "income": 1}, {"age": 4, "income": 2.5, "note": "x"}])
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["age", "income"]
    assert out["income"].tolist() == [1.0, 2.5]
    assert out["income"].dtype == np.float64


def test_records_are_checked_without_conversion() -> None:
    rows = [{"age": 3, "income": 1.0}, {"age": None, "income": 2.0}]  # a null fits any type
    assert check_input(PEOPLE, rows, convert=False) is rows
    with pytest.raises(SignatureMismatchError, match=r"column 'age': expected long, got string \(row 1\)"):
        check_input(PEOPLE, [{"age": 3, "income": 1.0}, {"age": "x", "income": 2.0}])
    with pytest.raises(SignatureMismatchError, match="missing column 'income'"):
        check_input(PEOPLE, {"age": 3})


def test_records_are_checked_without_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)
    rows = [{"age": 3, "income": 1}]
    assert check_input(PEOPLE, rows) is rows
    with pytest.raises(SignatureMismatchError, match="column 'income': expected double, got string"):
        check_input(PEOPLE, [{"age": 3, "income": "lots"}])


def test_non_tabular_input_for_a_dataframe_schema() -> None:
    with pytest.raises(SignatureMismatchError, match="input: expected a dataframe with columns 'age', 'income', got"):
        check_input(PEOPLE, np.zeros((2, 2)))


def test_object_columns_accept_anything() -> None:
    schema = {"type": "dataframe", "columns": [{"name": "x", "type": "object"}]}
    frame = pd.DataFrame({"x": [1, "a"]})
    assert check_input(schema, frame) is not None


# ---- checking tensors ---------------------------------------------------------------------------------


def test_wrong_shape_is_reported() -> None:
    with pytest.raises(SignatureMismatchError, match=r"^input: expected tensor of shape \[-1, 4\], got shape \(2, 3\)$"):
        check_input(MATRIX, np.zeros((2, 3)))
    with pytest.raises(SignatureMismatchError, match=r"got shape \(4,\)"):
        check_input(MATRIX, np.zeros(4))


def test_any_batch_size_is_accepted() -> None:
    out = check_input(MATRIX, np.ones((7, 4)))
    assert isinstance(out, np.ndarray)
    assert out.shape == (7, 4)


def test_int_tensor_is_converted_to_float() -> None:
    out = check_input(MATRIX, np.ones((2, 4), dtype="int64"))
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    float32 = {"type": "tensor", "dtype": "float32", "shape": [-1, 2]}
    out = check_input(float32, [[1.0, 2.0]])
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float32


def test_float_tensor_is_refused_for_int() -> None:
    schema = {"type": "tensor", "dtype": "int64", "shape": [-1]}
    with pytest.raises(SignatureMismatchError, match="input: expected tensor of dtype int64, got float64"):
        check_input(schema, np.ones(3))


def test_lists_and_frames_are_converted_to_arrays() -> None:
    out = check_input(MATRIX, [[1, 2, 3, 4]])
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    frame = pd.DataFrame(np.ones((2, 4)))
    out = check_input(MATRIX, frame)
    assert isinstance(out, np.ndarray)
    assert check_input(MATRIX, [[1, 2, 3, 4]], convert=False) == [[1, 2, 3, 4]]
    with pytest.raises(SignatureMismatchError, match="ragged list"):
        check_input(MATRIX, [[1, 2], [3]])
    with pytest.raises(SignatureMismatchError, match=r"input: expected tensor of shape .*, got str"):
        check_input(MATRIX, "nope")


def test_json_schema_passes_anything_through() -> None:
    data = {"anything": [1, "two"]}
    assert check_input({"type": "json"}, data) is data


# ---- errors and validation ----------------------------------------------------------------------------


def test_mismatch_error_is_a_value_error_and_a_model_error() -> None:
    assert issubclass(SignatureMismatchError, ValueError)
    assert issubclass(SignatureMismatchError, ModelError)
    assert issubclass(ModelError, CairnError)


def test_validate_signature() -> None:
    assert validate_signature({"inputs": MATRIX}) == {"inputs": MATRIX, "outputs": None}
    with pytest.raises(ModelError, match="signature must be a dict"):
        validate_signature({"outputs": MATRIX})
    with pytest.raises(ModelError, match="unknown keys"):
        validate_signature({"inputs": MATRIX, "input": MATRIX})
    with pytest.raises(ModelError, match="signature inputs: a schema is a dict"):
        validate_signature({"inputs": {"type": "table"}})
