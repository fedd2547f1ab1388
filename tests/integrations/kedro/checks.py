"""What a user looks at after a pipeline run, asserted once for every way of running it."""

from __future__ import annotations

from pathlib import Path

import cairn
from tests.integrations.kedro.conftest import Kedro
from tests.integrations.kedro.project import LONG_NOTE


def configure(kedro: Kedro, text: str, env: str = "local") -> None:
    (kedro.project / "conf" / env / "cairn.yml").write_text(text)


def only_run(kedro: Kedro, experiment: str) -> cairn.Run:
    runs = kedro.client().search_runs(experiment)
    assert len(runs) == 1, [(r.id, r.name, r.status) for r in runs]
    return kedro.client().get_run(runs[0].id)


def check_training_run(kedro: Kedro, run: cairn.Run, *, runner: str = "SequentialRunner",
                       model: bool = True, one_session: bool = True) -> None:
    """Params, tags, dataset references, metric summaries, artifact versions, the registered version."""
    client = kedro.client()
    assert run.status == "FINISHED"
    assert run.params["model.C"] == "0.5" and run.params["split.test_size"] == "0.3"
    assert run.params["model.features"] == '["tenure", "spend", "calls"]'
    assert run.params["notes"] == f"see artifact kedro/long_params.json ({len(LONG_NOTE)} characters)"
    assert run.tags["kedro.package"] == "churn_demo" and run.tags["kedro.runner"] == runner
    assert run.tags["kedro.pipeline"] == "__default__" and run.tags["kedro.env"] == "local"
    assert run.tags["kedro.version"].startswith("1.") and run.tags["kedro.session_id"]
    for node in ("split", "train", "evaluate"):
        assert run.tags[f"kedro.node.{node}"] == "completed"
        assert run.metrics[f"kedro.node.{node}.seconds"].count == 1
    assert run.tags["kedro.dataset.train_set.type"] == "kedro_datasets.pandas.csv_dataset.CSVDataset"
    refs = {(d.name, d.role): d for d in run.datasets}
    assert refs[("raw", "input")].uri.endswith("data/01_raw/churn.csv")
    train_set = refs[("train_set", "output")]
    if one_session:  # the Kedro version stamp of this save is the session's
        assert train_set.version == run.tags["kedro.session_id"]
    assert (kedro.project / "data/05_model_input/train.csv" / train_set.version / "train.csv").is_file()
    accuracy = run.metrics["accuracy"]
    assert 0.5 <= accuracy.last <= 1.0 and accuracy.count == 1
    assert run.metrics["f1"].last_step == 1
    plot = client.list_artifact_versions(run.id, "plots/confusion.png")
    assert len(plot) == 1 and plot[0].size > 1000
    long_params = Path(client.download_artifact(run.id, "kedro/long_params.json", kedro.project / "dl"))
    assert LONG_NOTE in long_params.read_text()
    if model:
        check_registered(client, run)


def check_registered(client: cairn.Client, run: cairn.Run) -> None:
    versions = [v for v in client.list_model_versions("dev.churn") if v.run_id == run.id]
    assert len(versions) == 1, versions
    version = versions[0]
    assert version.flavor == "sklearn" and version.tags == {"team": "growth"}
    assert version.manifest.get("signature"), "the input example gives the model a signature"
    assert client.get_model_version_by_alias("dev.churn", "challenger").version == version.version
