"""The datasets as ParallelRunner sees them: built from catalog entries, pickled, checked on bad input."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from kedro.io import DataCatalog
from kedro.io.core import DatasetError

import cairn
from cairn.integrations.kedro import ArtifactDataset, MetricsDataset, ModelDataset, RegistryModelDataset

CATALOG = {
    "plot": {"type": "cairn.integrations.kedro.ArtifactDataset", "artifact_path": "plots",
             "dataset": {"type": "pandas.CSVDataset", "filepath": "data/table.csv"}},
    "metrics": {"type": "cairn.integrations.kedro.MetricsDataset", "prefix": "eval"},
    "model": {"type": "cairn.integrations.kedro.ModelDataset", "flavor": "sklearn",
              "registered_model_name": "dev.churn", "aliases": ["challenger"]},
    "champion": {"type": "cairn.integrations.kedro.RegistryModelDataset", "model_uri": "models:/prod.churn@champion"},
}


def test_catalog_entries_build_and_pickle_cleanly() -> None:
    catalog = DataCatalog.from_config(CATALOG)
    for name in CATALOG:
        dataset = catalog[name]
        copy = pickle.loads(pickle.dumps(dataset))
        assert type(copy) is type(dataset) and copy._describe() == dataset._describe()


def test_bad_configuration_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(DatasetError, match="needs a filepath"):
        ArtifactDataset(dataset={"type": "pandas.CSVDataset"})
    with pytest.raises(DatasetError, match="name with either alias or version"):
        RegistryModelDataset(name="prod.churn")
    with pytest.raises(DatasetError, match=r"models:/"):
        RegistryModelDataset(model_uri="runs:/abc/model")
    assert RegistryModelDataset(name="prod.churn", version=3)._describe() == {"model_uri": "models:/prod.churn/3"}
    with pytest.raises(DatasetError, match="load-only"):
        RegistryModelDataset(name="prod.churn", alias="champion").save(object())


def test_metrics_dataset_formats(sdk_env: Path) -> None:
    dataset = MetricsDataset(prefix="eval", step=2)
    with pytest.raises(DatasetError, match="dict of metric values"):
        dataset.save([0.5])  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match=r"\{value, step\?\}"):
        dataset.save({"acc": {"val": 1}})
    with cairn.start_run("metrics") as run:  # outside a pipeline, a dataset logs to the SDK's active run
        dataset.save({"acc": 0.75, "f1": {"value": 0.5, "step": 7}, "loss": [{"value": 1.0, "step": 0}, 0.5]})
        cairn.flush()
        assert dataset.load() == {"acc": 0.75, "f1": 0.5, "loss": 0.5}
    got = cairn.Client().get_run(run.id).metrics
    assert (got["eval.acc"].last_step, got["eval.f1"].last_step, got["eval.loss"].count) == (2, 7, 2)


def test_tracking_failures_never_fail_a_save(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """No run anywhere: the file is still written and the dataset says what it could not log."""
    artifact = ArtifactDataset(dataset={"type": "text.TextDataset", "filepath": str(tmp_path / "note.txt")})
    artifact.save("hello")
    assert artifact.load() == "hello"
    MetricsDataset().save({"acc": 1.0})
    ModelDataset(flavor="sklearn").save(object())
    warned = " ".join(r.getMessage() for r in caplog.records)
    assert "could not log artifact note.txt" in warned and "could not log metrics" in warned
    assert "could not log model model" in warned
