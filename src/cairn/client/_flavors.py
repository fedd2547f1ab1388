"""Saving a model as a folder, checking such a folder, and loading it back.

A saved model is a plain folder that a person can read:

    my-model/
        MODEL.json           the manifest (below); written last
        model.pkl            flavor "sklearn": the estimator, pickled with cloudpickle
        model.pt             flavor "pytorch", a whole nn.Module: torch.save(module)
        state_dict.pt        flavor "pytorch", a state dict: torch.save(state_dict)
        python_model.pkl     flavor "pyfunc": any object with predict(data), pickled with cloudpickle
        input_example.json   the example input, if one was given
        extra/<name>         extra files copied in; a pyfunc model may read them on load

MODEL.json is pretty-printed JSON with sorted keys:

    {
      "created": 1718000000000,                          milliseconds since the epoch
      "files": {"model.pkl": {"sha256": "9f2c...", "size": 1234}, ...},
                                                         every file but MODEL.json: POSIX paths, sorted
      "flavor": "sklearn",                               sklearn | pytorch | pyfunc
      "format": 1,
      "input_example": "input_example.json",             or null
      "loader": {"kind": "cloudpickle", "file": "model.pkl", "class": "sklearn.linear_model.LogisticRegression"},
      "metadata": {},                                    free-form, from the caller
      "python": "3.11.7",
      "requirements": ["cloudpickle==3.1.0", "numpy==2.1.0", "scikit-learn==1.5.2", ...],
      "signature": {"inputs": <schema>, "outputs": <schema>}    or null; schemas are described in _signature
    }

The loader's "kind" is "cloudpickle" (sklearn, pyfunc), "module" or "state_dict" (pytorch); a pyfunc's
loader also maps each extra file's name to its path ("extra_files"). input_example.json is described in
_examples.

A model is written into a hidden sibling folder and renamed into place once complete, so a reader never
sees half a model. Loading checks every listed file's size and sha256 before unpickling anything; pickles
run code when loaded, so load models only from sources you trust.

A folder whose manifest says flavor "mlflow" holds a model as the mlflow client wrote it (MLmodel and the
files of MLflow's flavor, all listed in "files"); it is verified the same way and loaded by _mlflow_format.

A pyfunc object may define ``load_extra_files(files: dict[str, Path])``: it is called after loading with the
absolute path of each extra file, by the name it was saved under.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cairn.client import _mlflow_format as mlflow_format
from cairn.client._errors import MissingDependencyError, ModelError, ModelIntegrityError, SignatureMismatchError
from cairn.client._examples import decode_example, encode_example
from cairn.client._signature import (
    as_ndarray,
    check_input,
    infer_schema,
    is_dataframe,
    require_module,
    validate_signature,
)

__all__ = [
    "MANIFEST",
    "LoadedModel",
    "MissingDependencyError",
    "ModelError",
    "ModelIntegrityError",
    "SignatureMismatchError",
    "decode_example",
    "detect_flavor",
    "encode_example",
    "load_model_dir",
    "require_flavor",
    "save_model",
    "verify_model_dir",
]

MANIFEST = "MODEL.json"
FORMAT = 1
EXAMPLE_FILE = "input_example.json"
EXTRA_DIR = "extra"
_ALIASES = {"scikit-learn": "sklearn", "torch": "pytorch", "python_function": "pyfunc"}


def _qualname(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


# ---- flavors -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Flavor:
    name: str
    module: str  # imported to check that the flavor can work here
    package: str  # what to pip install when it cannot
    requirements: tuple[str, ...]  # distributions pinned into the manifest
    save: Callable[[Any, Path], dict[str, Any]]  # writes the model file(s), returns the loader
    load: Callable[[Path, dict[str, Any]], Any]  # (folder, manifest) -> raw model
    predict: Callable[[Any, Any], Any]  # (raw model, checked data) -> prediction
    convert_input: bool = True  # hand the model the data in the signature's form (records -> DataFrame)
    label: str = ""  # what needs the package, in the error when it is missing; "the '<name>' flavor" if empty
    install: str | None = None  # how to install it, if not plainly "pip install <package>"

    @property
    def needed_by(self) -> str:
        return self.label or f"the {self.name!r} flavor"

    def require(self) -> Any:
        return require_module(self.module, self.package, self.needed_by, self.install)


def _dump_pickle(model: object, folder: Path, file: str, flavor: str) -> dict[str, Any]:
    cloudpickle = require_module("cloudpickle", "cloudpickle", f"the {flavor!r} flavor")
    with (folder / file).open("wb") as f:
        cloudpickle.dump(model, f)
    return {"kind": "cloudpickle", "file": file, "class": _qualname(model)}


def _load_pickle(folder: Path, manifest: dict[str, Any]) -> Any:
    cloudpickle = require_module("cloudpickle", "cloudpickle", f"the {manifest['flavor']!r} flavor")
    with _model_file(folder, manifest).open("rb") as f:
        return cloudpickle.load(f)  # the file's sha256 was checked against the manifest


def _model_file(folder: Path, manifest: dict[str, Any]) -> Path:
    rel = (manifest.get("loader") or {}).get("file")
    if not isinstance(rel, str) or rel not in manifest["files"]:
        raise ModelIntegrityError.at(folder / MANIFEST, f"the loader's file {rel!r} is not listed in 'files'")
    return _listed_path(folder, rel)


def _save_sklearn(model: object, folder: Path) -> dict[str, Any]:
    return _dump_pickle(model, folder, "model.pkl", "sklearn")


def _predict_sklearn(model: Any, data: Any) -> Any:
    method = getattr(model, "predict", None)
    if not callable(method):
        raise ModelError(f"this {type(model).__name__} has no predict method (a transformer?); use .raw directly")
    return method(data)


def _save_pyfunc(model: object, folder: Path) -> dict[str, Any]:
    if not callable(getattr(model, "predict", None)) and not callable(model):
        raise ModelError(f"cannot save {type(model).__name__} as pyfunc: it has no predict method and is not callable")
    return _dump_pickle(model, folder, "python_model.pkl", "pyfunc")


def _load_pyfunc(folder: Path, manifest: dict[str, Any]) -> Any:
    model = _load_pickle(folder, manifest)
    hook = getattr(model, "load_extra_files", None)
    if callable(hook):
        hook(_extra_paths(folder, manifest))
    return model


def _predict_pyfunc(model: Any, data: Any) -> Any:
    method = getattr(model, "predict", None)
    return method(data) if callable(method) else model(data)


_STATE_DICT_HINT = ("this pytorch model was saved as a state dict, which cannot run without its module class: "
                    "build the module, call module.load_state_dict(loaded.raw), then call the module")


def _torch() -> Any:
    return require_module("torch", "torch", "the 'pytorch' flavor")


def _is_state_dict(model: object, torch: Any) -> bool:
    return isinstance(model, Mapping) and bool(model) and all(isinstance(v, torch.Tensor) for v in model.values())


def _save_torch(model: object, folder: Path) -> dict[str, Any]:
    torch = _torch()
    if isinstance(model, torch.nn.Module):
        torch.save(model, folder / "model.pt")
        return {"kind": "module", "file": "model.pt", "class": _qualname(model)}
    if _is_state_dict(model, torch):
        torch.save(model, folder / "state_dict.pt")
        return {"kind": "state_dict", "file": "state_dict.pt", "tensors": len(model)}  # type: ignore[arg-type]
    raise ModelError(f"the 'pytorch' flavor saves a torch.nn.Module or a state dict (a dict of tensors), "
                     f"not {type(model).__name__}")


def _load_torch(folder: Path, manifest: dict[str, Any]) -> Any:
    torch = _torch()
    kind = manifest["loader"].get("kind")
    if kind not in ("module", "state_dict"):
        raise ModelError(f"{folder / MANIFEST}: unknown pytorch loader kind {kind!r}")
    # A whole module is a pickle of its class (weights_only=False); a state dict needs only tensors.
    return torch.load(_model_file(folder, manifest), map_location="cpu", weights_only=kind == "state_dict")


def _predict_torch(module: Any, data: Any) -> Any:
    if isinstance(module, Mapping):
        raise ModelError(_STATE_DICT_HINT)
    torch = _torch()
    if not isinstance(data, torch.Tensor):
        data = torch.as_tensor(data.to_numpy() if is_dataframe(data) else data)
    was_training = bool(getattr(module, "training", False))
    module.eval()
    try:
        with torch.no_grad():
            out = module(data)
    finally:
        module.train(was_training)  # predicting must not change the caller's module
    return out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else out


_FLAVORS = {
    "sklearn": _Flavor("sklearn", "sklearn", "scikit-learn",
                       ("scikit-learn", "numpy", "scipy", "joblib", "cloudpickle"),
                       _save_sklearn, _load_pickle, _predict_sklearn),
    "pytorch": _Flavor("pytorch", "torch", "torch", ("torch",), _save_torch, _load_torch, _predict_torch),
    "pyfunc": _Flavor("pyfunc", "cloudpickle", "cloudpickle", ("cloudpickle",),
                      _save_pyfunc, _load_pyfunc, _predict_pyfunc, convert_input=False),
}


# Loaded, never saved: models in MLflow's format are written by the mlflow client (see _mlflow_format).
_MLFLOW = _Flavor(mlflow_format.FLAVOR, mlflow_format.MODULE, mlflow_format.PACKAGE, (), mlflow_format.refuse_save,
                  mlflow_format.load, mlflow_format.predict, convert_input=False, label=mlflow_format.LABEL,
                  install=mlflow_format.INSTALL)
_LOADABLE = {**_FLAVORS, _MLFLOW.name: _MLFLOW}


def _flavor(name: object, table: Mapping[str, _Flavor] = _FLAVORS) -> _Flavor:
    key = _ALIASES.get(str(name), str(name))
    if key not in table:
        raise ModelError(f"unknown flavor {name!r}; choose one of {', '.join(table)}")
    return table[key]


def _is_sklearn(model: object) -> bool:
    # Judged by the class hierarchy's names, so sklearn is never imported just to ask.
    return any(c.__module__ == "sklearn.base" and c.__name__ == "BaseEstimator" for c in type(model).__mro__)


def _is_torch(model: object) -> bool:
    torch = sys.modules.get("torch")  # a module or tensor cannot exist unless torch is imported
    if torch is None:
        return False
    return isinstance(model, torch.nn.Module) or _is_state_dict(model, torch)


def detect_flavor(model: object) -> str:
    """The flavor a model is saved with when none is given: sklearn, pytorch, or pyfunc (has a predict method)."""
    if _is_sklearn(model):
        return "sklearn"
    if _is_torch(model):
        return "pytorch"
    if callable(getattr(model, "predict", None)):
        return "pyfunc"
    raise ModelError(f"cannot save {type(model).__name__}: it has no predict method; pass flavor=...")


# ---- saving --------------------------------------------------------------------------------------------


def save_model(model: object, path: Path, *, flavor: str | None = None, input_example: object = None,
               signature: dict[str, Any] | None = None, requirements: list[str] | None = None,
               extra_files: Mapping[str, str | Path] | None = None,
               metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``model`` as a model folder at ``path`` (absent or empty) and return its manifest.

    The signature is inferred from ``input_example`` when not given (outputs from predicting on it, if that
    works); requirements are pinned from the installed versions of the flavor's packages when not given.
    """
    path = Path(path)
    _check_target(path)
    spec = _flavor(flavor) if flavor is not None else _FLAVORS[detect_flavor(model)]
    spec.require()
    meta = _json_roundtrip(metadata or {}, "metadata")
    sig = _signature_for(spec, model, input_example, signature)
    staging = path.parent / f".{path.name}.{secrets.token_hex(4)}.partial"
    staging.mkdir()
    try:
        manifest = _write_folder(staging, spec, model, signature=sig, example=input_example, requirements=requirements,
                                 extra_files=extra_files, metadata=meta)
        if path.exists():
            path.rmdir()  # checked empty above
        staging.rename(path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _check_target(path: Path) -> None:
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ModelError(f"cannot save a model to {path}: it exists and is not an empty folder")
    path.parent.mkdir(parents=True, exist_ok=True)


def _write_folder(folder: Path, spec: _Flavor, model: object, *, signature: dict[str, Any] | None, example: object,
                  requirements: list[str] | None, extra_files: Mapping[str, str | Path] | None,
                  metadata: dict[str, Any]) -> dict[str, Any]:
    loader = spec.save(model, folder)
    extras = _copy_extra_files(folder, extra_files or {})
    if extras:
        loader["extra_files"] = extras
    example_file = None
    if example is not None:
        _write_json(folder / EXAMPLE_FILE, encode_example(example))
        example_file = EXAMPLE_FILE
    manifest = {
        "format": FORMAT, "flavor": spec.name, "python": platform.python_version(),
        "created": int(time.time() * 1000), "signature": signature, "input_example": example_file,
        "requirements": _requirements(spec, model, example, requirements), "files": _digest_files(folder),
        "loader": loader, "metadata": metadata,
    }
    _write_json(folder / MANIFEST, manifest)
    return manifest


def _signature_for(spec: _Flavor, model: object, example: object,
                   signature: dict[str, Any] | None) -> dict[str, Any] | None:
    if signature is not None:
        sig = _json_roundtrip(validate_signature(signature), "signature")
        if example is not None and sig["inputs"]:
            check_input(sig["inputs"], example, convert=False)
        return sig
    if example is None:
        return None
    inputs = infer_schema(example)
    return {"inputs": inputs, "outputs": _infer_outputs(spec, model, inputs, example)}


def _infer_outputs(spec: _Flavor, model: object, inputs: dict[str, Any], example: object) -> dict[str, Any] | None:
    try:
        output = spec.predict(model, check_input(inputs, example, convert=spec.convert_input))
    except Exception:  # best effort: a model that cannot predict on its example just has no output schema
        return None
    return infer_schema(output)


def _requirements(spec: _Flavor, model: object, example: object, given: list[str] | None) -> list[str]:
    if given is None:
        dists = (*spec.requirements, *_model_packages(model), *_example_packages(example))
        pins = [_pin(dist) for dist in dists]
    elif isinstance(given, str) or not all(isinstance(r, str) for r in given):
        raise ModelError("requirements must be a list of strings such as 'numpy==2.1.0'")
    else:
        pins = [r.strip() for r in given]
    return sorted({p for p in pins if p}, key=lambda p: (p.lower(), p))


def _pin(dist: str) -> str | None:
    try:
        return f"{dist}=={importlib.metadata.version(dist)}"
    except importlib.metadata.PackageNotFoundError:
        return None


def _model_packages(model: object) -> tuple[str, ...]:
    """The distribution that the model's class comes from, when it is an installed package (e.g. xgboost for an
    XGBClassifier saved as sklearn); code in the caller's own tree or the standard library adds nothing."""
    top = type(model).__module__.partition(".")[0]
    if top in sys.stdlib_module_names or top in ("builtins", "__main__", "sklearn", "torch"):
        return ()
    file = str(getattr(sys.modules.get(top), "__file__", None) or "")
    if "site-packages" not in file and "dist-packages" not in file:
        return ()
    return tuple(importlib.metadata.packages_distributions().get(top, ()))


def _example_packages(example: object) -> tuple[str, ...]:
    if is_dataframe(example):
        return ("pandas", "numpy")
    if as_ndarray(example) is not None:
        return ("numpy",)
    return ()


def _copy_extra_files(folder: Path, extra_files: Mapping[str, str | Path]) -> dict[str, str]:
    copied = {}
    for name, source in extra_files.items():
        rel = _extra_name(name)
        src, dest = Path(source), folder / EXTRA_DIR / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dest)
        elif src.is_file():
            shutil.copyfile(src, dest)
        else:
            raise ModelError(f"extra file {name!r}: {src} does not exist")
        copied[rel] = f"{EXTRA_DIR}/{rel}"
    return copied


def _extra_name(name: str) -> str:
    rel = PurePosixPath(name)
    if not name or "\\" in name or rel.is_absolute() or any(p in ("", ".", "..") for p in name.split("/")):
        raise ModelError(f"extra file name {name!r} must be a relative path such as 'vocab.txt' or 'data/labels.csv'")
    return rel.as_posix()


def _digest_files(folder: Path) -> dict[str, dict[str, Any]]:
    files = {}
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        rel = file.relative_to(folder).as_posix()
        if rel != MANIFEST:
            files[rel] = {"sha256": _sha256(file), "size": file.stat().st_size}
    return files


def _sha256(file: Path) -> str:
    with file.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


def _write_json(file: Path, value: object) -> None:
    file.write_text(_dumps(value), encoding="utf-8")


def _json_roundtrip(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    try:
        result: dict[str, Any] = json.loads(_dumps(value))
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{what} must be JSON-serializable: {exc}") from None
    return result


# ---- checking and loading ------------------------------------------------------------------------------


def _listed_path(folder: Path, rel: str) -> Path:
    parts = rel.split("/")
    if not rel or PurePosixPath(rel).is_absolute() or "\\" in rel or any(p in ("", ".", "..") for p in parts):
        raise ModelIntegrityError.at(folder / MANIFEST, f"lists an unsafe file path {rel!r}")
    return folder.joinpath(*parts)


def _read_manifest(folder: Path) -> dict[str, Any]:
    file = folder / MANIFEST
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelIntegrityError.at(file, "missing: this is not a model folder") from None
    except ValueError as exc:
        raise ModelIntegrityError.at(file, f"not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ModelIntegrityError.at(file, "not a model manifest (no 'files' table)")
    if manifest.get("format") != FORMAT:
        raise ModelError(f"{file}: model format {manifest.get('format')!r} is not supported by this version "
                         f"of cairn (it reads format {FORMAT}); upgrade cairn")
    return manifest


def _verify_file(folder: Path, rel: str, info: object) -> None:
    file = _listed_path(folder, rel)
    if not file.is_file():
        raise ModelIntegrityError.at(file, "listed in MODEL.json but missing")
    expected = info if isinstance(info, dict) else {}
    size = file.stat().st_size
    if size != expected.get("size"):
        raise ModelIntegrityError.at(file, f"size {size} does not match MODEL.json ({expected.get('size')}): "
                                           "the file was changed or is incomplete")
    digest = _sha256(file)
    if digest != expected.get("sha256"):
        raise ModelIntegrityError.at(file, f"sha256 {digest} does not match MODEL.json "
                                           f"({expected.get('sha256')}): the file was changed or corrupted")


def verify_model_dir(path: Path) -> dict[str, Any]:
    """Check a model folder against its manifest (every listed file present, same size and sha256); return it."""
    folder = Path(path)
    manifest = _read_manifest(folder)
    for rel, info in manifest["files"].items():
        _verify_file(folder, rel, info)
    return manifest


def _extra_paths(folder: Path, manifest: dict[str, Any]) -> dict[str, Path]:
    extras = (manifest.get("loader") or {}).get("extra_files") or {}
    listed = manifest["files"]
    paths = {}
    for name, rel in extras.items():
        if rel not in listed and not any(f.startswith(f"{rel}/") for f in listed):
            raise ModelIntegrityError.at(folder / MANIFEST, f"extra file {name!r} ({rel}) is not listed in 'files'")
        paths[name] = _listed_path(folder, rel).resolve()
    return paths


def _read_example(folder: Path, manifest: dict[str, Any]) -> dict[str, Any] | None:
    rel = manifest.get("input_example")
    if not rel:
        return None
    if rel not in manifest["files"]:
        raise ModelIntegrityError.at(folder / MANIFEST, f"the input example {rel!r} is not listed in 'files'")
    file = _listed_path(folder, rel)
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelIntegrityError.at(file, f"not valid JSON ({exc})") from None
    return doc if isinstance(doc, dict) else {"type": "json", "data": doc}


def require_flavor(manifest: Mapping[str, Any]) -> None:
    """Fail (MissingDependencyError) before a model is downloaded if its flavor's package is not installed here."""
    _flavor(manifest.get("flavor"), _LOADABLE).require()


def load_model_dir(path: Path) -> LoadedModel:
    """Verify a model folder, then load it with its flavor (MissingDependencyError if the flavor's package is absent).

    The folder must stay in place while the model is used if the model reads extra files lazily.
    """
    folder = Path(path)
    manifest = verify_model_dir(folder)
    spec = _flavor(manifest.get("flavor"), _LOADABLE)
    spec.require()
    raw = spec.load(folder, manifest)
    return LoadedModel(manifest, raw, folder, spec, _read_example(folder, manifest))


class LoadedModel:
    """A loaded model: ``predict`` checks its input against the signature, then calls the model.

    ``raw`` is the underlying object: the estimator, the torch module or state dict, or the pyfunc object; for
    a model in MLflow's format, MLflow's PyFuncModel (whose predict checks MLflow's own signature, so
    ``signature`` is None here).
    """

    def __init__(self, manifest: dict[str, Any], raw: object, path: Path, spec: _Flavor,
                 example: dict[str, Any] | None) -> None:
        self.manifest = manifest
        self.flavor: str = spec.name
        self.signature: dict[str, Any] | None = manifest.get("signature")
        self.raw = raw
        self.path = path
        self._spec = spec
        self._example = example

    @property
    def requirements(self) -> list[str]:
        if self.flavor == _MLFLOW.name:
            return mlflow_format.requirements(self.path, self.manifest)
        return list(self.manifest.get("requirements") or [])

    @property
    def extra_files(self) -> dict[str, Path]:
        """Extra files saved with the model: name -> absolute path inside the model folder."""
        return _extra_paths(self.path, self.manifest)

    def predict(self, data: object) -> object:
        """Check ``data`` against the signature's inputs (SignatureMismatchError), then predict."""
        if self.flavor == "pytorch" and isinstance(self.raw, Mapping):
            raise ModelError(_STATE_DICT_HINT)
        inputs = (self.signature or {}).get("inputs")
        if inputs:
            data = check_input(inputs, data, convert=self._spec.convert_input)
        return self._spec.predict(self.raw, data)

    def input_example(self) -> object | None:
        """The stored input example, decoded back to its type (DataFrame, ndarray, or JSON data); None if none."""
        if self.flavor == _MLFLOW.name:
            return mlflow_format.input_example(self.raw)
        return None if self._example is None else decode_example(self._example)

    def __repr__(self) -> str:
        return f"<LoadedModel flavor={self.flavor!r} raw={type(self.raw).__name__} path={str(self.path)!r}>"
