"""Parameter checks, the sanity check, baselines, diagnosis and the plot."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from deep_learning_workflow.columns import target_classes
from deep_learning_workflow.metrics import score
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse, validate_parameters
from deep_learning_workflow.pipelines.modelling.nodes import (
    BASELINES,
    check_modelling_inputs,
    check_overfit_one_batch,
    diagnose_training,
    fit_baseline_models,
    plot_training_history,
)

from .conftest import ROLES, make_table, modelling_params


@pytest.mark.parametrize(
    ("change", "key"),
    [
        ({"hidden_layers": 0}, "modelling.hidden_layers"),
        ({"hidden_layers": 7}, "modelling.hidden_layers"),
        ({"units": 16}, "modelling.units"),
        ({"dropout": 1.5}, "modelling.dropout"),
        ({"optimizer": "rmsprop"}, "modelling.optimizer"),
        ({"learning_rate": 0}, "modelling.learning_rate"),
        ({"l2": -0.1}, "modelling.l2"),
        ({"epochs": 0}, "modelling.epochs"),
        ({"distribution": "tpu"}, "modelling.distribution"),
        ({"class_weight": "auto"}, "modelling.class_weight"),
        ({"numeric": {"clip_quantiles": [0.9, 0.1]}}, "modelling.numeric"),
        ({"hidden_units": [64, 32]}, "modelling.hidden_units"),
    ],
)
def test_invalid_parameters_fail_naming_the_key(change, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        parse(ModellingParams, modelling_params(**change), "modelling")
    # The run's hook validates the same way before any node runs.
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        validate_parameters({"modelling": modelling_params(**change)})


def test_the_shipped_parameters_are_valid(project_path):
    import yaml

    for env in ("base", "test"):
        values = yaml.safe_load(
            (project_path / "conf" / env / "parameters_modelling.yml").read_text()
        )
        assert set(values) == {"modelling"}
    base = yaml.safe_load((project_path / "conf/base/parameters_modelling.yml").read_text())[
        "modelling"
    ]
    parse(ModellingParams, base, "modelling")


def test_a_role_naming_a_missing_column_fails_before_training(train, val):
    columns = {**ROLES, "numeric": ["tenure", "monthly_charge"]}
    with pytest.raises(ValueError, match=r"columns\.numeric names 'monthly_charge'"):
        check_modelling_inputs(train, train, val, columns, modelling_params())


def test_per_column_scaling_must_name_a_numeric_feature(train, val):
    params = modelling_params(numeric={"scaling_by_column": {"contract": "minmax"}})
    with pytest.raises(
        ValueError, match=r"modelling\.numeric\.scaling_by_column names \['contract'\]"
    ):
        check_modelling_inputs(train, train, val, dict(ROLES), params)


def test_a_validation_class_unknown_to_train_is_rejected(train, val):
    odd = val.copy()
    odd.loc[odd.index[0], "churn"] = "Maybe"
    with pytest.raises(ValueError, match=r"'val'.*\['Maybe'\]"):
        check_modelling_inputs(train, train, odd, dict(ROLES), modelling_params())


def test_inputs_check_resolves_inferred_roles(train, val):
    roles = check_modelling_inputs(
        train, train, val, {**ROLES, "numeric": None, "categorical": None}, modelling_params()
    )
    assert roles["numeric"] == ["tenure", "monthly_charges"]
    assert roles["categorical"] == ["contract", "paperless_billing"]


def test_the_sanity_check_memorises_one_batch(train, columns):
    report = check_overfit_one_batch(train, columns, modelling_params(), seed=0)
    assert report["passed"] and report["rows"] == 32
    assert report["final_loss"] <= report["max_loss"] < report["initial_loss"]
    assert report["accuracy"] == 1.0


def test_the_sanity_check_fails_the_run_loudly(train, columns):
    params = modelling_params(sanity_check={"steps": 1, "max_loss": 0.01})
    with pytest.raises(ValueError, match=r"Sanity check failed.*sanity_check\.max_loss"):
        check_overfit_one_batch(train, columns, params, seed=0)
    assert check_overfit_one_batch(
        train, columns, modelling_params(sanity_check={"enabled": False}), 0
    ) == {"enabled": False}


def test_baselines_take_raw_frames_and_follow_the_class_order(train, val, columns, tmp_path):
    from kedro_datasets.pickle import PickleDataset

    models = fit_baseline_models(train, columns, modelling_params(), seed=0)
    assert set(models) == set(BASELINES)
    records = make_table(30, seed=9, contracts=("Three year",))
    records.loc[0, "monthly_charges"] = np.nan
    features = ROLES["numeric"] + ROLES["categorical"]
    classes = target_classes(train["churn"])
    for name, model in models.items():
        assert list(model.classes_) == classes
        assert model.predict_proba(records[features]).shape == (30, 2)
        auc = score("roc_auc", val["churn"], model.predict_proba(val[features]), classes, "Yes")
        assert auc == 0.5 if name == "majority_class" else auc > 0.65
    # Fitted on train only: the encoder knows train's categories, not the unseen one.
    encoder = (
        models["logistic_regression"].named_steps["preprocess"].named_transformers_["categorical"]
    )
    assert "Three year" not in np.concatenate(encoder.named_steps["one_hot"].categories_)

    dataset = PickleDataset(filepath=str(tmp_path / "baselines.pkl"))
    dataset.save(models)
    again = dataset.load()
    np.testing.assert_allclose(
        again["gradient_boosting"].predict_proba(val),
        models["gradient_boosting"].predict_proba(val),
    )
    assert pickle.loads(pickle.dumps(models["logistic_regression"])).predict_proba(
        val[features]
    ).shape == (len(val), 2)


def _history(loss, val_loss, best_epoch, epochs_run=None):
    return {
        "seed": 42,
        "best_epoch": best_epoch,
        "epochs_run": epochs_run or len(loss),
        "monitor": "val_pr_auc",
        "class_prior_loss": 0.58,
        "history": {
            "loss": loss,
            "val_loss": val_loss,
            "pr_auc": list(np.linspace(0.5, 0.7, len(loss))),
            "val_pr_auc": list(np.linspace(0.5, 0.6, len(loss))),
        },
    }


def test_a_healthy_run_raises_no_flag():
    history = _history(
        [0.50, 0.45, 0.42, 0.41, 0.40, 0.395], [0.48, 0.44, 0.425, 0.42, 0.421, 0.422], best_epoch=4
    )
    diagnosis = diagnose_training(history, modelling_params(epochs=30))
    assert diagnosis["flags"] == {"unstable": False, "overfitting": False, "underfitting": False}
    assert diagnosis["healthy"] and diagnosis["advice"] == []


def test_overfitting_is_read_from_a_growing_gap():
    history = _history(
        [0.5, 0.4, 0.3, 0.2, 0.12, 0.08], [0.48, 0.42, 0.41, 0.45, 0.5, 0.56], best_epoch=3
    )
    diagnosis = diagnose_training(history, modelling_params(epochs=30))
    assert diagnosis["flags"]["overfitting"] and not diagnosis["flags"]["underfitting"]
    assert diagnosis["evidence"]["loss_gap_growth"] == pytest.approx((0.56 - 0.08) - (0.41 - 0.3))
    assert any("dropout" in line for line in diagnosis["advice"])


def test_unstable_learning_is_read_from_a_jumping_loss():
    history = _history(
        [0.5, 0.42, 0.55, 0.40, 0.9, 0.41], [0.5, 0.45, 0.5, 0.44, 0.8, 0.45], best_epoch=4
    )
    diagnosis = diagnose_training(history, modelling_params(epochs=30))
    assert diagnosis["flags"]["unstable"]
    assert any("learning_rate" in line for line in diagnosis["advice"])


def test_underfitting_is_read_from_poor_or_still_improving_curves():
    poor = _history([0.58, 0.575, 0.57, 0.57], [0.58, 0.578, 0.577, 0.578], best_epoch=3)
    assert diagnose_training(poor, modelling_params(epochs=30))["flags"]["underfitting"]
    improving = _history([0.5, 0.45, 0.42, 0.40], [0.49, 0.46, 0.44, 0.43], best_epoch=4)
    diagnosis = diagnose_training(improving, modelling_params(epochs=4))
    assert (
        diagnosis["flags"]["underfitting"]
        and diagnosis["evidence"]["still_improving_at_last_epoch"]
    )


def test_the_history_plot_has_train_and_validation_curves():
    figure = plot_training_history(_history([0.5, 0.4, 0.35], [0.5, 0.45, 0.44], best_epoch=3))
    assert len(figure.data) == 4  # loss and pr_auc, train and validation each
    assert [trace.name for trace in figure.data] == ["train", "validation"] * 2
    assert list(figure.data[1].y) == [0.5, 0.45, 0.44]
