"""A small trained model, its metadata and tiny splits for the model pruning tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

ROLES: dict[str, Any] = {
    "key": "customer_id",
    "target": "churn",
    "positive_class": "Yes",
    "numeric": ["tenure", "monthly_charges"],
    "categorical": ["contract", "paperless_billing"],
    "text": [],
}
PROBLEM: dict[str, Any] = {"statement": "Who churns?", "primary_metric": "pr_auc"}
# Tiny, fast settings: the tests check behaviour, not model quality.
MODELLING: dict[str, Any] = {
    "hidden_layers": 2,
    "units": 32,
    "dropout": 0.1,
    "learning_rate": 0.01,
    "batch_size": 64,
    "epochs": 2,
    "steps_per_execution": 4,
    "seeds": 1,
    "early_stopping": {"patience": 2},
}
PRUNING: dict[str, Any] = {
    "target_sparsity": 0.5,
    "sparsities": [0.0, 0.5, 0.8],
    "epochs": 2,
    "learning_rate": 0.001,
    "latency_records": 10,
}


def make_table(rows: int, seed: int) -> pd.DataFrame:
    """A churn-like table whose target depends on contract and tenure; some monthly charges are missing."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], size=rows)
    tenure = rng.integers(0, 73, size=rows).astype("float64")
    charges = np.round(rng.uniform(18.0, 120.0, size=rows), 2)
    charges[rng.random(rows) < 0.05] = np.nan
    risk = np.where(contract == "Month-to-month", 0.55, 0.1) * np.where(tenure < 12, 1.4, 0.6)
    return pd.DataFrame(
        {
            "customer_id": [f"C{seed:02d}{i:05d}" for i in range(rows)],
            "churn": pd.Series(np.where(rng.random(rows) < risk, "Yes", "No"), dtype="str"),
            "tenure": tenure,
            "monthly_charges": charges,
            "contract": pd.Series(contract, dtype="str"),
            "paperless_billing": pd.Series(rng.choice(["0", "1"], size=rows), dtype="str"),
        }
    )


@pytest.fixture(scope="session")
def splits() -> dict[str, pd.DataFrame]:
    train = make_table(400, seed=1)
    return {"train": train, "train_balanced": train.copy(), "val": make_table(200, seed=2)}


@pytest.fixture(scope="session")
def training_result(splits) -> Any:
    """One training with seed 7, shared by the single model and the first seed model of the ensemble tests."""
    from deep_learning_workflow.models.fitting import train_model

    return train_model(
        splits["train"], splits["val"], ROLES, MODELLING, seed=7, fit_on=splits["train_balanced"]
    )


@pytest.fixture(scope="session")
def trained(training_result) -> tuple[Any, dict[str, Any]]:
    """A model trained once, and the metadata the modelling pipeline writes beside it (the keys pruning reads)."""
    from deep_learning_workflow.models.preprocessing import as_params

    result = training_result
    roles = result.roles
    metadata = {
        "classes": result.classes,
        "positive_class": roles.positive_class,
        "target": roles.target,
        "key": roles.key,
        "roles": {"numeric": roles.numeric, "categorical": roles.categorical, "text": roles.text},
        "params": as_params(MODELLING).model_dump(mode="json"),
    }
    return result.model, metadata


def pruning_setup(metadata: dict[str, Any], splits: dict[str, pd.DataFrame]) -> Any:
    """What the pruning nodes share, gathered by the pipeline's first node from the test settings."""
    from deep_learning_workflow.pipelines.model_pruning.setup import prepare_pruning

    return prepare_pruning(
        metadata, splits["train"], splits["train_balanced"], splits["val"], PRUNING, PROBLEM, 42
    )
