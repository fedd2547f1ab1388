"""A real Kedro project, written file by file: a small scikit-learn pipeline (split, train, evaluate) whose
catalog uses a versioned Kedro dataset and Cairn's four datasets. Made once per test session."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd

PACKAGE = "churn_demo"

PYPROJECT = f"""
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "{PACKAGE}"
version = "0.1"

[tool.kedro]
package_name = "{PACKAGE}"
project_name = "Churn demo"
kedro_init_version = "1.0.0"
source_dir = "src"
"""

SETTINGS = """
from kedro.config import OmegaConfigLoader

CONFIG_LOADER_CLASS = OmegaConfigLoader
"""

REGISTRY = """
from kedro.pipeline import Pipeline

from churn_demo.nodes import scoring, training


def register_pipelines() -> dict[str, Pipeline]:
    return {"__default__": training(), "training": training(), "score": scoring()}
"""

NODES = '''
"""The pipeline's nodes: module-level functions, so ParallelRunner can send them to its workers."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from kedro.pipeline import Pipeline, node
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def split(raw: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    test = raw.sample(frac=params["test_size"], random_state=params["seed"])
    return raw.drop(test.index), test


def train(train_set: pd.DataFrame, params: dict) -> dict:
    x, y = train_set.drop(columns="churn"), train_set["churn"]
    model = LogisticRegression(C=params["C"], max_iter=params["max_iter"]).fit(x, y)
    return {"model": model, "input_example": x.head(3)}


def evaluate(model, test_set: pd.DataFrame, params: dict) -> tuple[dict, object]:
    if params.get("fail"):
        raise ValueError("evaluation refused: the test set is stale")
    x, y = test_set.drop(columns="churn"), test_set["churn"]
    predicted = model.predict(x)
    figure, axes = plt.subplots()
    axes.imshow(confusion_matrix(y, predicted))
    metrics = {"accuracy": float(accuracy_score(y, predicted)),
               "f1": {"value": float(f1_score(y, predicted)), "step": 1}}
    return metrics, figure


def score(champion, test_set: pd.DataFrame) -> dict:
    x, y = test_set.drop(columns="churn"), test_set["churn"]
    return {"champion_accuracy": float(accuracy_score(y, champion.predict(x)))}


def training() -> Pipeline:
    return Pipeline([
        node(split, ["raw", "params:split"], ["train_set", "test_set"], name="split"),
        node(train, ["train_set", "params:model"], "classifier", name="train"),
        node(evaluate, ["classifier", "test_set", "params:evaluate"], ["eval_metrics", "confusion_matrix"],
             name="evaluate"),
    ])


def scoring() -> Pipeline:
    return Pipeline([node(score, ["champion", "test_set"], "champion_metrics", name="score")])
'''

CATALOG = """
raw:
  type: pandas.CSVDataset
  filepath: data/01_raw/churn.csv

train_set:
  type: pandas.CSVDataset
  filepath: data/05_model_input/train.csv
  versioned: true

test_set:
  type: pandas.CSVDataset
  filepath: data/05_model_input/test.csv

classifier:
  type: cairn.integrations.kedro.ModelDataset
  flavor: sklearn
  registered_model_name: dev.churn
  aliases: [challenger]
  tags: {team: growth}

eval_metrics:
  type: cairn.integrations.kedro.MetricsDataset

confusion_matrix:
  type: cairn.integrations.kedro.ArtifactDataset
  artifact_path: plots
  dataset:
    type: matplotlib.MatplotlibDataset
    filepath: data/08_reporting/confusion.png

champion:
  type: cairn.integrations.kedro.RegistryModelDataset
  model_uri: models:/dev.churn@challenger

champion_metrics:
  type: cairn.integrations.kedro.MetricsDataset
  prefix: score
"""

PROD_CATALOG = """
champion:
  type: cairn.integrations.kedro.RegistryModelDataset
  model_uri: models:/prod.churn@champion
"""

PARAMETERS = """
split:
  test_size: 0.3
  seed: 7
model:
  C: 0.5
  max_iter: 200
  features: [tenure, spend, calls]
evaluate:
  fail: false
notes: "{long}"
"""

LONG_NOTE = "n" * 9000  # longer than a param value may be: recorded whole in an artifact, not cut


def make_project(root: Path) -> Path:
    """Write the project under ``root`` and return its path."""
    project = root / "churn-demo"
    package = project / "src" / PACKAGE
    package.mkdir(parents=True)
    (project / "pyproject.toml").write_text(PYPROJECT)
    (package / "__init__.py").write_text('__version__ = "0.1"\n')
    (package / "settings.py").write_text(SETTINGS)
    (package / "pipeline_registry.py").write_text(REGISTRY)
    (package / "nodes.py").write_text(textwrap.dedent(NODES))
    for env in ("base", "local", "prod"):
        (project / "conf" / env).mkdir(parents=True)
    (project / "conf" / "base" / "catalog.yml").write_text(CATALOG)
    (project / "conf" / "prod" / "catalog.yml").write_text(PROD_CATALOG)
    (project / "conf" / "base" / "parameters.yml").write_text(PARAMETERS.replace("{long}", LONG_NOTE))
    raw = project / "data" / "01_raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"tenure": rng.normal(size=120), "spend": rng.normal(size=120),
                          "calls": rng.normal(size=120)})
    frame["churn"] = (frame["tenure"] - frame["calls"] + rng.normal(scale=0.3, size=120) > 0).astype(int)
    frame.to_csv(raw / "churn.csv", index=False)
    return project
