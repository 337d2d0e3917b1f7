"""Early-stopping patience: a number, or `auto`, growing as the validation split holds fewer rows of a class."""

from __future__ import annotations

import numpy as np
import pytest

from deep_learning_workflow.models.patience import early_stopping, early_stopping_patience
from deep_learning_workflow.models.preprocessing import as_params

from .conftest import modelling_params


def one_hot(counts: list[int]) -> np.ndarray:
    labels = np.repeat(np.arange(len(counts)), counts)
    return np.eye(len(counts), dtype="float32")[labels]


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ([800, 280], 3),  # Telco's validation split: 280 churners
        ([900, 250], 3),
        ([750, 108], 5),  # 3 * sqrt(250 / 108) = 4.56
        ([820, 52], 7),  # 3 * sqrt(250 / 52) = 6.58
        ([300, 10], 10),  # capped at max_patience
        ([500, 0, 60], 7),  # an absent class is not the rarest one
    ],
)
def test_auto_patience_grows_as_the_rarest_class_shrinks(counts, expected):
    params = as_params(modelling_params(early_stopping={"patience": "auto"}))
    assert early_stopping_patience(params, one_hot(counts)) == expected


def test_a_number_is_used_as_it_is_and_the_callback_gets_the_resolved_patience():
    fixed = as_params(modelling_params(early_stopping={"patience": 4}))
    assert early_stopping_patience(fixed, one_hot([10, 5])) == 4
    auto = as_params(
        modelling_params(
            early_stopping={
                "patience": "auto",
                "min_patience": 2,
                "max_patience": 20,
                "reference_rows": 400,
            }
        )
    )
    # 2 * sqrt(400 / 25) = 8
    assert early_stopping(auto, "val_pr_auc", "max", one_hot([300, 25])).patience == 8
    assert early_stopping_patience(auto, None) == 20


def test_the_shipped_default_is_auto():
    assert as_params({}).early_stopping.patience == "auto"
    assert as_params({}).seed_selection == "average"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"patience": "long"}, "patience"),
        ({"min_patience": 8, "max_patience": 4}, "min_patience"),
        ({"reference_rows": 0}, "reference_rows"),
        ({"loss_tolerance": -0.05}, "loss_tolerance"),
        ({"loss_tolerance": "small"}, "loss_tolerance"),
        ({"loss_tolerance": float("inf")}, "loss_tolerance"),
    ],
)
def test_bad_patience_settings_are_refused_naming_the_key(settings, message):
    with pytest.raises(ValueError, match=message):
        as_params(modelling_params(early_stopping=settings))


def test_an_unknown_seed_selection_is_refused():
    with pytest.raises(ValueError, match="seed_selection"):
        as_params(modelling_params(seed_selection="median"))
