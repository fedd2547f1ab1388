"""Model folders: saving, verifying and loading each flavor (cairn.client._flavors)."""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from cairn.client._flavors import (
    MANIFEST,
    LoadedModel,
    MissingDependencyError,
    ModelError,
    ModelIntegrityError,
    SignatureMismatchError,
    detect_flavor,
    load_model_dir,
    save_model,
    verify_model_dir,
)

# ---- models used by the tests (module level, so pickles can find them) ---------------------------------


class Scaler:
    """A pyfunc model whose factor lives in an extra file, read when the model is loaded."""

    def __init__(self) -> None:
        self.factor = 0.0

    def load_extra_files(self, files: dict[str, Path]) -> None:
        if "factor.txt" in files:
            self.factor = float(files["factor.txt"].read_text())

    def predict(self, data: Any) -> list[float]:
        return [row["x"] * self.factor for row in data]


class NoPredict:
    pass


class FakeTensor:
    def __init__(self, data: Any) -> None:
        self.data = np.asarray(data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> Any:
        return self.data if dtype is None else self.data.astype(dtype)

    def detach(self) -> FakeTensor:
        return self

    def cpu(self) -> FakeTensor:
        return self

    def numpy(self) -> Any:
        return self.data


class FakeModule:
    training = True

    def eval(self) -> FakeModule:
        return self.train(False)

    def train(self, mode: bool = True) -> FakeModule:
        self.training = mode
        return self

    def __call__(self, x: FakeTensor) -> FakeTensor:
        return FakeTensor(x.data * 2)


class Doubler(FakeModule):
    pass


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Enough of torch for the pytorch flavor (torch itself is not installed in the test environment)."""
    torch = types.ModuleType("torch")
    nn = types.ModuleType("torch.nn")
    loads: list[dict[str, Any]] = []

    def save(obj: object, f: Path) -> None:
        Path(f).write_bytes(pickle.dumps(obj))

    def load(f: Path, **kwargs: Any) -> object:
        loads.append(kwargs)
        return pickle.loads(Path(f).read_bytes())

    nn.Module = FakeModule  # type: ignore[attr-defined]
    vars(torch).update(nn=nn, Tensor=FakeTensor, save=save, load=load, as_tensor=FakeTensor,
                       no_grad=contextlib.nullcontext)
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch.nn", nn)
    return types.SimpleNamespace(module=torch, loads=loads)


@pytest.fixture(scope="module")
def people() -> tuple[pd.DataFrame, list[int]]:
    frame = pd.DataFrame({"age": [22, 25, 31, 38, 45, 52, 58, 63],
                          "income": [1.0, 1.4, 2.2, 2.5, 3.9, 4.1, 4.8, 5.5]})
    return frame, [0, 0, 0, 0, 1, 1, 1, 1]


@pytest.fixture(scope="module")
def classifier(people: tuple[pd.DataFrame, list[int]]) -> LogisticRegression:
    frame, labels = people
    return LogisticRegression().fit(frame, labels)


@pytest.fixture
def saved(tmp_path: Path, classifier: LogisticRegression, people: tuple[pd.DataFrame, list[int]]) -> Path:
    save_model(classifier, tmp_path / "model", input_example=people[0].head(3))
    return tmp_path / "model"


# ---- sklearn -------------------------------------------------------------------------------------------


def test_sklearn_round_trip(saved: Path, classifier: LogisticRegression,
                            people: tuple[pd.DataFrame, list[int]]) -> None:
    frame = people[0]
    model = load_model_dir(saved)
    assert isinstance(model, LoadedModel)
    assert model.flavor == "sklearn"
    assert isinstance(model.raw, LogisticRegression)
    assert np.array_equal(model.predict(frame), classifier.predict(frame))
    records = frame.to_dict("records")
    assert np.array_equal(model.predict(records), classifier.predict(frame))
    pd.testing.assert_frame_equal(model.input_example(), frame.head(3))  # type: ignore[arg-type]


def test_sklearn_manifest_contents(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    assert manifest["format"] == 1
    assert manifest["flavor"] == "sklearn"
    assert manifest["python"] == ".".join(str(n) for n in sys.version_info[:3])
    assert isinstance(manifest["created"], int)
    assert manifest["input_example"] == "input_example.json"
    assert sorted(manifest["files"]) == ["input_example.json", "model.pkl"]
    assert manifest["loader"] == {"kind": "cloudpickle", "file": "model.pkl",
                                  "class": "sklearn.linear_model._logistic.LogisticRegression"}
    assert manifest["signature"] == {
        "inputs": {"type": "dataframe", "columns": [{"name": "age", "type": "long"},
                                                    {"name": "income", "type": "double"}]},
        "outputs": {"type": "tensor", "dtype": "int64", "shape": [-1]},
    }
    assert verify_model_dir(saved) == manifest


def test_manifest_is_human_readable(saved: Path) -> None:
    text = (saved / MANIFEST).read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert '\n  "flavor": "sklearn",\n' in text


def test_requirements_pin_installed_versions(saved: Path) -> None:
    manifest = verify_model_dir(saved)
    dists = ["cloudpickle", "joblib", "numpy", "pandas", "scikit-learn", "scipy"]  # pandas: the example is a frame
    assert manifest["requirements"] == [f"{d}=={importlib.metadata.version(d)}" for d in dists]


def test_given_requirements_are_sorted_and_deduplicated(tmp_path: Path, classifier: LogisticRegression) -> None:
    manifest = save_model(classifier, tmp_path / "m", requirements=["scipy", "Numpy==2.0", "scipy", "attrs"])
    assert manifest["requirements"] == ["attrs", "Numpy==2.0", "scipy"]
    with pytest.raises(ModelError, match="requirements must be a list of strings"):
        save_model(classifier, tmp_path / "n", requirements="numpy")  # type: ignore[arg-type]


def test_signature_mismatch_on_predict(saved: Path) -> None:
    model = load_model_dir(saved)
    with pytest.raises(SignatureMismatchError, match=r"missing column 'income' \(expected double\)"):
        model.predict(pd.DataFrame({"age": [30]}))
    with pytest.raises(SignatureMismatchError, match="column 'age': expected long, got string"):
        model.predict([{"age": "thirty", "income": 2.0}])


def test_int_income_is_converted_on_predict(saved: Path, classifier: LogisticRegression) -> None:
    model = load_model_dir(saved)
    ints = pd.DataFrame({"age": [30, 60], "income": [2, 5]})
    assert np.array_equal(model.predict(ints), classifier.predict(ints.astype({"income": "float64"})))


def test_sklearn_on_arrays_with_list_input(tmp_path: Path) -> None:
    features = np.array([[0.0, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]])
    estimator = LogisticRegression().fit(features, [0, 1, 0, 1])
    save_model(estimator, tmp_path / "m", input_example=features[:2])
    model = load_model_dir(tmp_path / "m")
    assert model.signature is not None
    assert model.signature["inputs"] == {"type": "tensor", "dtype": "float64", "shape": [-1, 2]}
    assert list(model.predict([[0, 1], [1, 0]])) == [0, 1]  # ints become float64
    with pytest.raises(SignatureMismatchError, match=r"expected tensor of shape \[-1, 2\], got shape \(1, 3\)"):
        model.predict([[0, 1, 2]])
    assert np.array_equal(model.input_example(), features[:2])  # type: ignore[arg-type]


def test_missing_sklearn_names_the_package(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)  # `import sklearn` now raises ImportError
    with pytest.raises(MissingDependencyError) as info:
        load_model_dir(saved)
    assert str(info.value) == "the 'sklearn' flavor needs scikit-learn: pip install scikit-learn"
    assert info.value.package == "scikit-learn"


# ---- pyfunc --------------------------------------------------------------------------------------------


def test_pyfunc_round_trip_with_an_extra_file(tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("2.5")
    example = [{"x": 1.0}, {"x": 2.0}]
    manifest = save_model(Scaler(), tmp_path / "m", input_example=example, extra_files={"factor.txt": factor})
    factor.unlink()  # the model reads its own copy
    assert manifest["flavor"] == "pyfunc"
    assert manifest["loader"]["extra_files"] == {"factor.txt": "extra/factor.txt"}
    assert "extra/factor.txt" in manifest["files"]
    assert manifest["signature"]["outputs"] == {"type": "tensor", "dtype": "float64", "shape": [-1]}
    model = load_model_dir(tmp_path / "m")
    assert model.predict([{"x": 2.0}, {"x": 4}]) == [5.0, 10.0]  # records stay records for pyfunc
    assert model.extra_files == {"factor.txt": (tmp_path / "m" / "extra" / "factor.txt").resolve()}
    assert model.input_example() == example
    with pytest.raises(SignatureMismatchError, match="column 'x': expected double, got string"):
        model.predict([{"x": "big"}])


def test_requirements_include_the_model_class_package(tmp_path: Path) -> None:
    # A class from an installed package (like an XGBClassifier) brings that package in.
    wrapped = type("Wrapped", (Scaler,), {"__module__": "joblib.wrapped"})()
    manifest = save_model(wrapped, tmp_path / "m")
    assert f"joblib=={importlib.metadata.version('joblib')}" in manifest["requirements"]


def test_pyfunc_requirements(tmp_path: Path) -> None:
    plain = save_model(Scaler(), tmp_path / "a")
    assert plain["requirements"] == [f"cloudpickle=={importlib.metadata.version('cloudpickle')}"]
    with_array = save_model(Scaler(), tmp_path / "b", input_example=np.zeros((1, 2)))
    assert [r.split("==")[0] for r in with_array["requirements"]] == ["cloudpickle", "numpy"]


def test_callable_saved_as_pyfunc_when_asked(tmp_path: Path) -> None:
    save_model(sorted, tmp_path / "m", flavor="pyfunc")
    assert load_model_dir(tmp_path / "m").predict([3, 1, 2]) == [1, 2, 3]
    with pytest.raises(ModelError, match="no predict method and is not callable"):
        save_model(NoPredict(), tmp_path / "n", flavor="pyfunc")
    assert not (tmp_path / "n").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no half-written staging folder is left behind


def test_bad_extra_file_names_and_sources(tmp_path: Path) -> None:
    source = tmp_path / "f.txt"
    source.write_text("x")
    for name in ["../f.txt", "/abs", "a/../b", ""]:
        with pytest.raises(ModelError, match="must be a relative path"):
            save_model(Scaler(), tmp_path / "m", extra_files={name: source})
    with pytest.raises(ModelError, match="does not exist"):
        save_model(Scaler(), tmp_path / "m", extra_files={"g.txt": tmp_path / "nope"})


def test_extra_directory_is_copied(tmp_path: Path) -> None:
    (tmp_path / "vocab" / "sub").mkdir(parents=True)
    (tmp_path / "vocab" / "sub" / "words.txt").write_text("a b")
    manifest = save_model(Scaler(), tmp_path / "m", extra_files={"vocab": tmp_path / "vocab"})
    assert "extra/vocab/sub/words.txt" in manifest["files"]
    assert load_model_dir(tmp_path / "m").extra_files["vocab"].joinpath("sub", "words.txt").read_text() == "a b"


# ---- pytorch (with a stand-in for torch) ---------------------------------------------------------------


def test_pytorch_module_round_trip(tmp_path: Path, fake_torch: types.SimpleNamespace) -> None:
    assert detect_flavor(Doubler()) == "pytorch"
    example = np.ones((2, 3), dtype="float32")
    manifest = save_model(Doubler(), tmp_path / "m", input_example=example)
    assert manifest["loader"] == {"kind": "module", "file": "model.pt", "class": f"{__name__}.Doubler"}
    assert manifest["signature"]["outputs"] == {"type": "tensor", "dtype": "float32", "shape": [-1, 3]}
    model = load_model_dir(tmp_path / "m")
    assert fake_torch.loads == [{"map_location": "cpu", "weights_only": False}]
    out = model.predict([[1.0, 2.0, 3.0]])
    assert isinstance(out, np.ndarray)
    assert out.tolist() == [[2.0, 4.0, 6.0]]
    assert out.dtype == np.float32


def test_saving_a_pytorch_module_keeps_its_training_mode(tmp_path: Path, fake_torch: types.SimpleNamespace) -> None:
    module = Doubler()
    save_model(module, tmp_path / "m", input_example=np.ones((1, 2)))  # predicts on the example for the signature
    assert module.training


def test_pytorch_state_dict_round_trip(tmp_path: Path, fake_torch: types.SimpleNamespace) -> None:
    state = {"weight": FakeTensor([1.0, 2.0]), "bias": FakeTensor([0.5])}
    assert detect_flavor(state) == "pytorch"
    manifest = save_model(state, tmp_path / "m")
    assert manifest["loader"] == {"kind": "state_dict", "file": "state_dict.pt", "tensors": 2}
    model = load_model_dir(tmp_path / "m")
    assert fake_torch.loads == [{"map_location": "cpu", "weights_only": True}]
    assert isinstance(model.raw, dict)
    assert model.raw["weight"].data.tolist() == [1.0, 2.0]
    with pytest.raises(ModelError, match=r"state dict.*load_state_dict"):
        model.predict([[1.0, 2.0]])


def test_pytorch_refuses_other_objects(tmp_path: Path, fake_torch: types.SimpleNamespace) -> None:
    with pytest.raises(ModelError, match=r"saves a torch\.nn\.Module or a state dict"):
        save_model({"a": 1}, tmp_path / "m", flavor="pytorch")


def test_pytorch_without_torch_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match=r"^the 'pytorch' flavor needs torch: pip install torch$"):
        save_model(Doubler(), tmp_path / "m", flavor="pytorch")
    assert list(tmp_path.iterdir()) == []


def test_pytorch_load_without_torch_names_the_package(tmp_path: Path, fake_torch: types.SimpleNamespace,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    save_model(Doubler(), tmp_path / "m")
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(MissingDependencyError, match="pip install torch") as info:
        load_model_dir(tmp_path / "m")
    assert info.value.package == "torch"


# ---- flavor detection ----------------------------------------------------------------------------------


def test_detect_flavor(classifier: LogisticRegression) -> None:
    assert detect_flavor(classifier) == "sklearn"
    assert detect_flavor(Scaler()) == "pyfunc"
    with pytest.raises(ModelError, match="cannot save dict"):  # arrays are not tensors
        detect_flavor({"weight": np.zeros(2)})
    with pytest.raises(ModelError, match=r"cannot save NoPredict: it has no predict method; pass flavor=\.\.\."):
        detect_flavor(NoPredict())


def test_detect_sklearn_without_importing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn", None)
    base = type("BaseEstimator", (), {"__module__": "sklearn.base"})
    estimator = type("Ridge", (base,), {"__module__": "sklearn.linear_model"})
    assert detect_flavor(estimator()) == "sklearn"


def test_unknown_flavor(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="unknown flavor 'onnx'; choose one of sklearn, pytorch, pyfunc"):
        save_model(Scaler(), tmp_path / "m", flavor="onnx")


# ---- integrity -----------------------------------------------------------------------------------------


def test_changed_file_is_refused_naming_it(saved: Path) -> None:
    pickled = saved / "model.pkl"
    data = bytearray(pickled.read_bytes())
    data[-2] ^= 0xFF  # same size, different content
    pickled.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match=r"model\.pkl: sha256 .* does not match MODEL\.json") as info:
        load_model_dir(saved)
    assert info.value.path == saved / "model.pkl"


def test_grown_file_is_refused(saved: Path) -> None:
    with (saved / "model.pkl").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ModelIntegrityError, match=r"model\.pkl: size \d+ does not match"):
        verify_model_dir(saved)


def test_missing_file_is_refused_naming_it(saved: Path) -> None:
    (saved / "input_example.json").unlink()
    with pytest.raises(ModelIntegrityError, match=r"input_example\.json: listed in MODEL\.json but missing"):
        load_model_dir(saved)


def test_missing_or_broken_manifest(tmp_path: Path, saved: Path) -> None:
    with pytest.raises(ModelIntegrityError, match=r"MODEL\.json: missing"):
        verify_model_dir(tmp_path)
    (saved / MANIFEST).write_text("{not json")
    with pytest.raises(ModelIntegrityError, match="not valid JSON"):
        verify_model_dir(saved)


def test_unsafe_paths_in_manifest_are_refused(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["files"]["../outside"] = {"sha256": "0", "size": 0}
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelIntegrityError, match=r"unsafe file path '\.\./outside'"):
        verify_model_dir(saved)


def test_newer_format_is_refused(saved: Path) -> None:
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["format"] = 2
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelError, match="format 2 is not supported"):
        load_model_dir(saved)


# ---- saving details ------------------------------------------------------------------------------------


def test_target_must_be_absent_or_empty(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    save_model(Scaler(), tmp_path / "empty")
    assert (tmp_path / "empty" / MANIFEST).is_file()
    with pytest.raises(ModelError, match="exists and is not an empty folder"):
        save_model(Scaler(), tmp_path / "empty")


def test_given_signature_is_kept_and_checked(tmp_path: Path) -> None:
    signature = {"inputs": {"type": "dataframe", "columns": [{"name": "x", "type": "double"}]}}
    manifest = save_model(Scaler(), tmp_path / "m", signature=signature, input_example=[{"x": 1}])
    assert manifest["signature"] == {**signature, "outputs": None}
    with pytest.raises(SignatureMismatchError, match="missing column 'x'"):
        save_model(Scaler(), tmp_path / "n", signature=signature, input_example=[{"y": 1}])


def test_metadata_must_be_json(tmp_path: Path) -> None:
    manifest = save_model(Scaler(), tmp_path / "m", metadata={"team": "search", "tags": ("a", "b")})
    assert manifest["metadata"] == {"team": "search", "tags": ["a", "b"]}
    with pytest.raises(ModelError, match="metadata must be JSON-serializable"):
        save_model(Scaler(), tmp_path / "n", metadata={"when": object()})


def test_examples_round_trip_with_special_values(tmp_path: Path) -> None:
    array = np.array([[1.0, np.nan], [np.inf, -np.inf]])
    save_model(Scaler(), tmp_path / "a", input_example=array)
    back = load_model_dir(tmp_path / "a").input_example()
    np.testing.assert_array_equal(back, array)  # type: ignore[arg-type]
    frame = pd.DataFrame({"n": pd.array([1, None], dtype="Int64"), "s": ["a", "b"],
                          "t": pd.to_datetime(["2024-01-01", "2024-06-01"], utc=True), "f": [0.5, np.nan]})
    save_model(Scaler(), tmp_path / "b", input_example=frame)
    pd.testing.assert_frame_equal(load_model_dir(tmp_path / "b").input_example(), frame)  # type: ignore[arg-type]
    save_model(Scaler(), tmp_path / "c", input_example={"text": "hi", "n": [1, 2]})
    assert load_model_dir(tmp_path / "c").input_example() == {"text": "hi", "n": [1, 2]}
    with pytest.raises(ModelError, match="input_example: cannot store a object as JSON"):
        save_model(Scaler(), tmp_path / "d", input_example=[object()])


def test_model_errors_share_a_base_and_pickle() -> None:
    for error in (MissingDependencyError, ModelIntegrityError, SignatureMismatchError):
        assert issubclass(error, ModelError)
        assert str(pickle.loads(pickle.dumps(error("boom")))) == "boom"
    assert MissingDependencyError.for_package("torch", "the 'pytorch' flavor").package == "torch"
