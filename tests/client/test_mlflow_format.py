"""Models in MLflow's format load with ``cairn.load_model``: logged by the real ``mlflow`` client against a
real ``cairn server`` (SQLite and PostgreSQL) and loaded back by alias, version and run through MLflow's
python-function flavor; the same in embedded mode; and, without mlflow installed, an error that says what
to install. ``import cairn`` never imports mlflow."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from sklearn.linear_model import LogisticRegression

import cairn
from cairn.client._flavors import MANIFEST, load_model_dir, save_model
from cairn.server.db.engine import sqlite_url
from tests.conftest import LiveServer

# the mlflow client warns about its own choices (type hints, pip inference); those are not Cairn's to fix
pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]
X = np.array([[0.0, 0.1], [0.2, 0.0], [0.9, 1.0], [1.0, 0.8], [0.1, 0.3], [0.8, 0.9], [0.45, 0.6], [0.6, 0.4]])
Y = np.array([0, 0, 1, 1, 0, 1, 1, 0])
# given, so that the client does not spend half a minute inferring them in a subprocess
REQUIREMENTS = ["scikit-learn", "numpy"]
WRITTEN = [f"mlflow=={mlflow.__version__}", *REQUIREMENTS]  # MLflow adds itself
INSTALL = ("a model in MLflow's format (it loads through mlflow.pyfunc) needs mlflow: "
           "pip install mlflow (or mlflow-skinny, the client without the server)")


@pytest.fixture(autouse=True)
def mlflow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    yield
    while mlflow.active_run():
        mlflow.end_run()
    mlflow.set_tracking_uri(None)


def log_with_mlflow(url: str, model: LogisticRegression, name: str = "churn") -> str:
    """Log and register ``model`` as the mlflow client does; returns the run id."""
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("churn")
    with mlflow.start_run() as run:
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name, input_example=X[:2],
                                 pip_requirements=REQUIREMENTS)
    return str(run.info.run_id)


def hide_mlflow(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import mlflow`` (and its python-function flavor) now fails, as where mlflow is not installed."""
    for module in ("mlflow", "mlflow.pyfunc"):
        monkeypatch.setitem(sys.modules, module, None)


# against a server, on SQLite and PostgreSQL ----------------------------------------------------------------

@pytest.mark.slow
def test_logged_by_mlflow_loads_by_alias_version_and_run(store_uri: str, tmp_path: Path, sdk_env: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server = LiveServer(tmp_path / "server-home", store_uri).start()
    try:
        first, second = LogisticRegression().fit(X, Y), LogisticRegression(C=0.01).fit(X, 1 - Y)
        run_id = log_with_mlflow(server.url, first)
        log_with_mlflow(server.url, second)
        mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "1")
        monkeypatch.setenv("CAIRN_TRACKING_URI", server.url)
        champion = cairn.load_model("models:/dev.churn@champion")
        assert champion.flavor == "mlflow" and type(champion.raw).__name__ == "PyFuncModel"
        assert np.array_equal(champion.predict(X), first.predict(X))
        assert np.array_equal(cairn.load_model("models:/churn/2").predict(X), second.predict(X))
        assert np.array_equal(cairn.load_model(f"runs:/{run_id}/model").predict(X), first.predict(X))
        assert champion.requirements == WRITTEN
        assert np.array_equal(champion.input_example(), X[:2])  # type: ignore[arg-type]
        mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "2")  # moved: the new model loads
        assert np.array_equal(cairn.load_model("models:/dev.churn@champion").predict(X), second.predict(X))
        assert (first.predict(X) != second.predict(X)).any()  # so the comparisons above tell the versions apart
    finally:
        server.stop()


# embedded: the SDK reads the same store with no server ---------------------------------------------------

@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CAIRN_HOME whose store holds a model logged by the mlflow client (through a server since stopped)."""
    home = tmp_path_factory.mktemp("embedded") / "home"
    server = LiveServer(home, sqlite_url(home / "cairn.db")).start()
    try:
        log_with_mlflow(server.url, LogisticRegression().fit(X, Y))
        mlflow.MlflowClient().set_registered_model_alias("churn", "champion", "1")
    finally:
        server.stop()
        mlflow.set_tracking_uri(None)
    return home


@pytest.mark.slow
def test_embedded_mode_loads_a_model_logged_by_mlflow(embedded_home: Path, sdk_env: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_HOME", str(embedded_home))
    loaded = cairn.load_model("models:/dev.churn@champion")
    assert np.array_equal(loaded.predict(X), LogisticRegression().fit(X, Y).predict(X))


@pytest.mark.slow
def test_without_mlflow_the_error_names_the_package(embedded_home: Path, sdk_env: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAIRN_HOME", str(embedded_home))
    hide_mlflow(monkeypatch)
    shutil.rmtree(embedded_home / "models", ignore_errors=True)  # models loaded by other tests are cached there
    with pytest.raises(cairn.MissingDependencyError) as info:
        cairn.load_model("models:/churn/1")
    assert (str(info.value), info.value.package) == (INSTALL, "mlflow")
    assert not (embedded_home / "models").exists()  # said before downloading anything


# a model folder on disk, no server ---------------------------------------------------------------------

def as_cairn_folder(folder: Path) -> Path:
    """Write the manifest a Cairn server keeps for an MLflow model (flavor "mlflow", every file's digest)."""
    files = {p.relative_to(folder).as_posix(): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                                  "size": p.stat().st_size}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"flavor": "mlflow", "format": 1, "files": files}))
    return folder


@pytest.fixture
def mlflow_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    mlflow.sklearn.save_model(LogisticRegression().fit(X, Y), str(folder), pip_requirements=REQUIREMENTS)
    return as_cairn_folder(folder)


def test_a_verified_folder_loads_and_a_changed_one_is_refused(mlflow_folder: Path) -> None:
    loaded = load_model_dir(mlflow_folder)
    assert np.array_equal(loaded.predict(X), LogisticRegression().fit(X, Y).predict(X))
    assert (loaded.signature, loaded.input_example(), loaded.requirements) == (None, None, WRITTEN)
    (mlflow_folder / "requirements.txt").write_text("evil\n")
    with pytest.raises(cairn.ModelIntegrityError, match=r"requirements\.txt: size 5 does not match"):
        load_model_dir(mlflow_folder)


def test_without_a_python_function_flavor_mlflow_says_why(mlflow_folder: Path) -> None:
    meta = yaml.safe_load((mlflow_folder / "MLmodel").read_text())
    del meta["flavors"]["python_function"]
    (mlflow_folder / "MLmodel").write_text(yaml.safe_dump(meta))
    with pytest.raises(cairn.ModelError, match=r"MLflow could not load this model through its python-function "
                                               r"flavor: .*python_function"):
        load_model_dir(as_cairn_folder(mlflow_folder))


def test_a_folder_without_mlmodel_is_refused(mlflow_folder: Path) -> None:
    (mlflow_folder / "MLmodel").unlink()
    with pytest.raises(cairn.ModelError, match="a model in MLflow's format has an MLmodel file, and this one has none"):
        load_model_dir(as_cairn_folder(mlflow_folder))


def test_missing_mlflow_is_said_before_loading(mlflow_folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hide_mlflow(monkeypatch)
    with pytest.raises(cairn.MissingDependencyError, match=r"pip install mlflow \(or mlflow-skinny"):
        load_model_dir(mlflow_folder)


def test_mlflow_models_are_loaded_never_saved(tmp_path: Path) -> None:
    with pytest.raises(cairn.ModelError, match=r"unknown flavor 'mlflow'; choose one of sklearn, pytorch, pyfunc$"):
        save_model(LogisticRegression(), tmp_path / "m", flavor="mlflow")


def test_the_sdk_imports_mlflow_only_to_load_such_a_model() -> None:
    code = ("import sys, cairn, cairn.client._registry, cairn.client._flavors, cairn.client._mlflow_format; "
            "print(any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
