"""Small tables and parameters for the modelling tests."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROLES = {
    "key": "customer_id",
    "target": "churn",
    "positive_class": "Yes",
    "numeric": ["tenure", "monthly_charges"],
    "categorical": ["contract", "paperless_billing"],
    "text": [],
}

# Tiny, fast settings (valid under the schema): the tests check behaviour, not model quality.
MODELLING: dict[str, Any] = {
    "hidden_layers": 2,
    "units": 32,
    "dropout": 0.1,
    "learning_rate": 0.01,
    "batch_size": 64,
    "epochs": 3,
    "steps_per_execution": 4,
    "seeds": 1,
    "early_stopping": {"patience": 2},
    "sanity_check": {"steps": 150},
    "baselines": {"logistic_regression": {"max_iter": 200}, "gradient_boosting": {"max_iter": 20}},
}


def make_table(
    rows: int, seed: int, contracts: tuple[str, ...] = ("Month-to-month", "One year", "Two year")
) -> pd.DataFrame:
    """A churn-like table whose target depends on contract and tenure; some monthly charges are missing."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(contracts, size=rows)
    tenure = rng.integers(0, 73, size=rows).astype("float64")
    charges = np.round(rng.uniform(18.0, 120.0, size=rows), 2)
    charges[rng.random(rows) < 0.05] = np.nan
    risk = np.where(contract == "Month-to-month", 0.55, 0.1) * np.where(tenure < 12, 1.4, 0.6)
    churn = np.where(rng.random(rows) < risk, "Yes", "No")
    return pd.DataFrame(
        {
            "customer_id": [f"C{seed:02d}{i:05d}" for i in range(rows)],
            "churn": pd.Series(churn, dtype="str"),
            "tenure": tenure,
            "monthly_charges": charges,
            "contract": pd.Series(contract, dtype="str"),
            "paperless_billing": pd.Series(rng.choice(["0", "1"], size=rows), dtype="str"),
        }
    )


def modelling_params(**overrides: Any) -> dict[str, Any]:
    """The tiny ``params:modelling`` with top-level keys replaced."""
    params = copy.deepcopy(MODELLING)
    params.update(overrides)
    return params


@pytest.fixture(scope="session")
def columns() -> dict[str, Any]:
    return dict(ROLES)


@pytest.fixture(scope="session")
def train() -> pd.DataFrame:
    return make_table(500, seed=1)


@pytest.fixture(scope="session")
def val() -> pd.DataFrame:
    return make_table(200, seed=2)


@pytest.fixture(scope="session")
def trained(train, val, columns):
    """One small model trained once for the tests that only read it."""
    from deep_learning_workflow.models.fitting import train_model

    return train_model(train, val, columns, modelling_params(), seed=7)
