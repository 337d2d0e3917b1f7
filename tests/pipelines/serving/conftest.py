"""Fixtures of the serving tests: a small Telco-like table and a real Keras model that follows the model contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.model_inputs import to_model_inputs

ROLES = {
    "key": "customer_id",
    "target": "churn",
    "positive_class": "Yes",
    "numeric": ["tenure", "monthly_charges"],
    "categorical": ["contract", "paperless_billing"],
    "text": [],
}


def make_table(rows: int, seed: int, with_target: bool = True) -> pd.DataFrame:
    """A table shaped like the clean Telco table: numeric columns with a few missing values, text categories."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(
        ["Month-to-month", "One year", "Two year"], size=rows, p=[0.55, 0.25, 0.2]
    )
    tenure = rng.integers(0, 73, size=rows).astype("float64")
    charges = np.round(rng.uniform(18.0, 120.0, size=rows), 2)
    charges[rng.random(rows) < 0.05] = np.nan
    churn_probability = np.where(contract == "Month-to-month", 0.45, 0.1) * np.where(
        tenure < 12, 1.5, 0.7
    )
    table = pd.DataFrame(
        {
            "customer_id": [f"C{seed:02d}{i:05d}" for i in range(rows)],
            "tenure": tenure,
            "monthly_charges": charges,
            "contract": pd.Series(contract, dtype="str"),
            "paperless_billing": pd.Series(rng.choice(["0", "1"], size=rows), dtype="str"),
        }
    )
    if with_target:
        churn = np.where(rng.random(rows) < churn_probability, "Yes", "No")
        table.insert(1, "churn", pd.Series(churn, dtype="str"))
    return table


def build_contract_model(train: pd.DataFrame, roles: ColumnRoles, epochs: int = 3, seed: int = 0):
    """A small Keras model following the project's model contract, preprocessing adapted on ``train`` only."""
    import keras

    from deep_learning_workflow.models.layers import ImputeMissing

    keras.utils.set_random_seed(seed)
    inputs, parts = {}, []
    for column in roles.numeric:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="float32")
        values = train[column].astype("float64")
        imputed = ImputeMissing(float(values.median()), name=f"impute_{column}")(inputs[column])
        parts.append(
            keras.layers.Normalization(
                mean=float(values.mean()), variance=float(values.var()), name=f"scale_{column}"
            )(imputed)
        )
    for column in roles.categorical:
        inputs[column] = keras.Input(shape=(1,), name=column, dtype="string")
        vocabulary = sorted(train[column].dropna().astype(str).unique())
        parts.append(
            keras.layers.StringLookup(
                vocabulary=vocabulary, output_mode="one_hot", name=f"lookup_{column}"
            )(inputs[column])
        )
    features = keras.layers.Concatenate(name="features")(parts)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden_0")(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    labels = (train[roles.target] == roles.positive_class).astype("int64").to_numpy()
    model.fit(to_model_inputs(train, roles), labels, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def roles() -> ColumnRoles:
    return ColumnRoles(**ROLES)


@pytest.fixture(scope="session")
def columns() -> dict:
    """``params:columns`` as the catalog hands it to a node."""
    return dict(ROLES)


@pytest.fixture(scope="session")
def train() -> pd.DataFrame:
    return make_table(400, seed=1)


@pytest.fixture(scope="session")
def new_records() -> pd.DataFrame:
    """Unlabelled records from the same population as ``train``."""
    return make_table(300, seed=2, with_target=False)


@pytest.fixture(scope="session")
def keras_model(train, roles):
    return build_contract_model(train, roles)


@pytest.fixture(scope="session")
def saved_model_path(keras_model, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.keras"
    keras_model.save(path)
    return path


def release_gate(model, passed: bool) -> dict:
    """A release gate as the evaluation pipeline writes it, for ``model``."""
    from deep_learning_workflow.fingerprints import model_fingerprint

    failed = [] if passed else ["floor pr_auc"]
    return {
        "passed": passed,
        "verdict": "release" if passed else "reject",
        "failed_checks": failed,
        "model_fingerprint": model_fingerprint(model),
    }


@pytest.fixture
def gate_passed(keras_model) -> dict:
    return release_gate(keras_model, passed=True)


@pytest.fixture
def decision_threshold() -> dict:
    return {"rule": "max_f1", "threshold": 0.35, "positive_class": "Yes"}


@pytest.fixture
def serving_params() -> dict:
    return {
        "force_export": False,
        "reference_bins": 5,
        "batch_size": 128,
        "drift": {"numeric_threshold": 0.2, "categorical_threshold": 0.1, "min_rows": 50},
    }
