"""Real models on a small sample of the Telco data: a Keras model that follows the project's model contract and
scikit-learn baselines, all fitted on a training sample only."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from deep_learning_workflow.columns import ColumnRoles, resolve_roles
from deep_learning_workflow.model_inputs import to_model_inputs

# MLflow must not phone home from the test suite.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

PROJECT = Path(__file__).resolve().parents[3]


def _conf(name: str) -> dict:
    return yaml.safe_load((PROJECT / "conf" / "base" / name).read_text())


@pytest.fixture(scope="session")
def columns() -> dict:
    return _conf("parameters.yml")["columns"]


@pytest.fixture(scope="session")
def problem() -> dict:
    return _conf("parameters.yml")["problem"]


@pytest.fixture(scope="session")
def evaluation() -> dict:
    params = _conf("parameters_evaluation.yml")["evaluation"]
    return {**params, "bootstrap": {**params["bootstrap"], "resamples": 200}}


@pytest.fixture(scope="session")
def release_scenarios() -> dict:
    return yaml.safe_load((PROJECT / "data" / "01_raw" / "release_scenarios.yml").read_text())


@pytest.fixture(scope="session")
def splits() -> dict[str, pd.DataFrame]:
    """Disjoint stratified samples of the demo data: 600 training, 300 validation and 300 test rows (rows with a
    missing value left out: the test model has no imputation layer)."""
    table = pd.read_csv(PROJECT / "data" / "01_raw" / "telco_churn.csv").dropna()
    rng = np.random.default_rng(7)
    parts: dict[str, list[pd.DataFrame]] = {"train": [], "val": [], "test": []}
    for _, group in table.groupby("churn"):
        order = rng.permutation(len(group))
        share = len(group) / len(table)
        sizes = {"train": round(600 * share), "val": round(300 * share), "test": round(300 * share)}
        start = 0
        for name, size in sizes.items():
            parts[name].append(group.iloc[order[start : start + size]])
            start += size
    return {
        name: pd.concat(frames).sort_values("customer_id").reset_index(drop=True)
        for name, frames in parts.items()
    }


@pytest.fixture(scope="session")
def roles(splits, columns) -> ColumnRoles:
    return resolve_roles(splits["train"], ColumnRoles(**columns), "train")


@pytest.fixture(scope="session")
def model_metadata(roles) -> dict:
    return {
        "classes": ["No", "Yes"],
        "positive_class": "Yes",
        "roles": {"numeric": roles.numeric, "categorical": roles.categorical, "text": roles.text},
        "feature_columns": roles.features,
        "seed": 42,
        "versions": {"keras": "3", "scikit-learn": "1"},
    }


def build_keras_model(
    train: pd.DataFrame,
    roles: ColumnRoles,
    reverse_column: str | None = None,
    shuffle_labels: int | None = None,
):
    """A Keras model per the model contract (one input per column, preprocessing layers, softmax output named
    ``probabilities``) whose output layer holds a logistic regression fitted on the encoded training features (deterministic, no training loop). ``reverse_column`` flips the signs of that column's
    weights, which makes a model that contradicts domain knowledge about it. ``shuffle_labels`` (a seed) fits the
    output layer to the training labels in a shuffled order: a model crippled on purpose."""
    import keras

    inputs, encoded, widths = {}, [], []
    for column in roles.numeric:
        values = train[column].astype("float64")
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        encoded.append(
            keras.layers.Normalization(
                mean=float(values.mean()), variance=float(values.var()), name=f"scale_{column}"
            )(inputs[column])
        )
        widths.append((column, 1))
    for column in roles.categorical:
        vocabulary = sorted(train[column].dropna().astype(str).unique())
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        encoded.append(
            keras.layers.StringLookup(
                vocabulary=vocabulary, output_mode="one_hot", name=f"lookup_{column}"
            )(inputs[column])
        )
        widths.append((column, len(vocabulary) + 1))
    features = keras.layers.Concatenate(name="features")(encoded)
    output = keras.layers.Dense(2, activation="softmax", name="probabilities")(features)
    model = keras.Model(inputs, output)
    design = keras.Model(inputs, features).predict(to_model_inputs(train, roles), verbose=0)
    target = train[roles.target].to_numpy() == "Yes"
    if shuffle_labels is not None:
        target = np.random.default_rng(shuffle_labels).permutation(target)
    regression = LogisticRegression(C=1.0, max_iter=2000).fit(design, target)
    coefficients = regression.coef_[0].copy()
    if reverse_column is not None:
        start = 0
        for column, width in widths:
            if column == reverse_column:
                coefficients[start : start + width] *= -1
            start += width
    kernel = np.zeros((design.shape[1], 2), dtype="float32")
    kernel[:, 1] = coefficients
    model.get_layer("probabilities").set_weights(
        [kernel, np.array([0.0, regression.intercept_[0]], dtype="float32")]
    )
    return model


@pytest.fixture(scope="session")
def keras_model(splits, roles):
    return build_keras_model(splits["train"], roles)


@pytest.fixture(scope="session")
def contrary_keras_model(splits, roles):
    """Believes longer contracts make customers more likely to leave."""
    return build_keras_model(splits["train"], roles, reverse_column="contract")


@pytest.fixture(scope="session")
def crippled_keras_model(splits, roles):
    """Trained on shuffled labels: it has learnt nothing about churn."""
    return build_keras_model(splits["train"], roles, shuffle_labels=0)


@pytest.fixture(scope="session")
def baseline_models(splits, roles) -> dict:
    train = splits["train"]
    features, target = train[roles.features], train[roles.target]
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                roles.numeric,
            ),
            ("categorical", OneHotEncoder(handle_unknown="ignore"), roles.categorical),
        ]
    )
    return {
        "majority_class": make_pipeline(preprocess, DummyClassifier(strategy="prior")).fit(
            features, target
        ),
        "logistic_regression": make_pipeline(
            preprocess, LogisticRegression(C=0.05, max_iter=2000)
        ).fit(features, target),
    }
