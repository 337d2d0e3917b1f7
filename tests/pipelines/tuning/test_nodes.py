"""Nodes and study pieces of tuning, on small Telco samples with real Keras training."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from deep_learning_workflow.datasets.optuna_storage import OptunaStorageDataset
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.pipelines.tuning.data import gather_tuning_data
from deep_learning_workflow.pipelines.tuning.nodes import (
    merge_best_params,
    run_study,
    select_best_params,
)
from deep_learning_workflow.pipelines.tuning.samplers import make_pruner, make_sampler
from deep_learning_workflow.pipelines.tuning.schema import PrunerParams, SamplerParams, TuningParams
from deep_learning_workflow.pipelines.tuning.search_space import merge_overrides
from deep_learning_workflow.pipelines.tuning.seeds import SeedJudge, seed_summary
from deep_learning_workflow.pipelines.tuning.study import open_study
from deep_learning_workflow.pipelines.tuning.trial import make_objective, pruning_callback

from .helpers import MODELLING, PROBLEM, ROLES, splits, tuning_params


@pytest.fixture(scope="module")
def frames():
    return splits()


class _ScriptedJudge(SeedJudge):
    """The real judgement over seeds, with each retraining's validation score read from a table instead of
    trained: (units, seed) -> score."""

    def retrain_score(self, params, seed, after=None, probabilities=None):
        return self.measure[(params["units"], seed)]


def _judged(raw_values, metric="pr_auc"):
    """Candidate records as :meth:`SeedJudge.judge` makes them, from each trial's seeds' raw validation values."""
    seeds = [42, 43, 44]
    table = {
        (32 * (trial + 1), seed): value
        for trial, values in raw_values.items()
        for seed, value in zip(seeds, values, strict=True)
    }
    judge = _ScriptedJudge(frames={}, columns=ROLES, seeds=seeds, metric=metric, measure=table)
    candidates = []
    for trial, values in raw_values.items():
        drawn = {"units": 32 * (trial + 1), "optimizer": "adam"}
        study_trial = SimpleNamespace(number=trial, params=drawn, values=[max(values)])
        # With one kept seed the saved model is a single seed's, judged by its pessimistic score.
        params = merge_overrides({**MODELLING, "seed_selection": "best"}, drawn)
        candidates.append(judge.judge(study_trial, params))
    return candidates


# Per trial, the validation PR-AUC of its three seeds: trial 1 has the best mean and the best single seed but
# scatters; trial 0 is steady; trial 2 is steady and worse.
RAW_VALUES = {0: [0.636, 0.640, 0.644], 1: [0.610, 0.650, 0.690], 2: [0.600, 0.601, 0.602]}


def test_candidates_are_ranked_by_mean_minus_sd():
    candidates = _judged(RAW_VALUES)
    best = select_best_params(candidates[::-1], PROBLEM, tuning_params())
    pessimistic = {t: statistics.mean(v) - statistics.stdev(v) for t, v in RAW_VALUES.items()}
    assert max(RAW_VALUES, key=lambda t: statistics.mean(RAW_VALUES[t])) == 1
    assert best["trial"] == max(pessimistic, key=pessimistic.get) == 0
    assert best["params"] == {"units": 32, "optimizer": "adam"}
    assert best["metric"] == "pr_auc" and best["direction"] == "maximize"
    assert best["ranking"] == "mean - sd over seeds"
    assert best["validation"]["score"] == pytest.approx(pessimistic[0])
    assert best["validation"]["values"] == RAW_VALUES[0]
    assert [c["trial"] for c in best["candidates"]] == [2, 1, 0]
    for record in best["candidates"]:
        assert record["score"] == pytest.approx(pessimistic[record["trial"]])
        assert record["sd"] == pytest.approx(statistics.stdev(RAW_VALUES[record["trial"]]))


def test_for_a_loss_the_ranking_is_mean_plus_sd():
    losses = {0: [0.35, 0.40, 0.45], 1: [0.419, 0.420, 0.421]}
    candidates = _judged(losses, metric="log_loss")
    best = select_best_params(
        candidates, {**PROBLEM, "primary_metric": "log_loss"}, tuning_params()
    )
    pessimistic = {t: statistics.mean(v) + statistics.stdev(v) for t, v in losses.items()}
    assert statistics.mean(losses[0]) < statistics.mean(losses[1])
    assert best["trial"] == min(pessimistic, key=pessimistic.get) == 1
    assert best["validation"]["score"] == pytest.approx(pessimistic[1])
    assert best["direction"] == "minimize"


def test_a_diverged_seed_leaves_the_candidate_without_a_score():
    (candidate,) = _judged({0: [0.6, float("nan"), 0.62]})
    assert candidate["values"] == [0.6, None, 0.62]
    assert candidate["mean"] is None and candidate["score"] is None


def test_seed_summary_matches_the_sample_statistics():
    values = [0.61, 0.65, 0.69]
    mean, sd, score = seed_summary(values, greater=True)
    assert (mean, sd) == (
        pytest.approx(statistics.mean(values)),
        pytest.approx(statistics.stdev(values)),
    )
    assert score == pytest.approx(mean - sd)
    assert seed_summary([0.5], greater=False) == (0.5, 0.0, 0.5)


def test_no_finite_candidate_is_an_error():
    (diverged,) = _judged({0: [0.4, float("nan"), 0.6]})
    with pytest.raises(ValueError, match="every retraining diverged"):
        select_best_params([diverged], PROBLEM, tuning_params())


def test_best_params_are_merged_over_the_modelling_parameters():
    modelling = {
        "epochs": 5,
        "units": 64,
        "categorical": {"encoding": "one_hot", "embedding_dim": 8},
    }
    best = {"params": {"units": 128, "learning_rate": 0.003, "categorical.encoding": "embedding"}}
    merged = merge_best_params(best, modelling)
    assert merged == {
        "epochs": 5,
        "units": 128,
        "learning_rate": 0.003,
        "categorical": {"encoding": "embedding", "embedding_dim": 8},
    }
    assert modelling["units"] == 64 and modelling["categorical"]["encoding"] == "one_hot"
    parse(ModellingParams, merged, "modelling")
    with pytest.raises(ValueError, match="modelling.units"):
        merge_best_params({"params": {"units": 4}}, modelling)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("median", optuna.pruners.MedianPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("successive_halving", optuna.pruners.SuccessiveHalvingPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_pruner_from_parameters(name, kind):
    assert isinstance(make_pruner(PrunerParams(name=name), epochs=10), kind)


def test_sampler_is_seeded_by_trial_number_not_by_worker():
    def draws(order):
        study = optuna.create_study(sampler=make_sampler(SamplerParams(n_startup_trials=10), 7))
        trials = [study.ask() for _ in range(3)]
        return {t.number: t.suggest_float("x", 0.0, 1.0) for t in (trials[i] for i in order)}

    first, again = draws([0, 1, 2]), draws([2, 0, 1])
    assert first == again
    assert len(set(first.values())) == 3


def test_existing_study_for_another_metric_is_refused(tmp_path):
    storage = OptunaStorageDataset(credentials={"con": f"sqlite:///{tmp_path}/study.db"}).load()
    settings = parse(TuningParams, tuning_params(), "tuning")
    open_study(storage, settings, "pr_auc", 42, 1)
    assert open_study(storage, settings, "pr_auc", 42, 1).user_attrs["metric"] == "pr_auc"
    with pytest.raises(ValueError, match="optimises pr_auc, not roc_auc"):
        open_study(storage, settings, "roc_auc", 42, 1)
    with pytest.raises(ValueError, match="not log_loss"):
        open_study(storage, settings, "log_loss", 42, 1)


def test_pruning_callback_refuses_a_metric_the_logs_lack():
    study = optuna.create_study(direction="maximize")
    callback = pruning_callback(study.ask(), "val_pr_acu")
    with pytest.raises(ValueError, match="'val_pr_acu'.*val_pr_auc"):
        callback.on_epoch_end(0, {"loss": 0.5, "val_pr_auc": 0.6})


@pytest.mark.slow
def test_training_reports_every_epoch_and_is_pruned(frames):
    """The pruning callback watches a key Keras really logs: a pruner that prunes everything stops the trial."""
    settings = parse(TuningParams, tuning_params(), "tuning")
    study = optuna.create_study(
        direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1.5)
    )
    objective = make_objective(frames, ROLES, {**MODELLING, "epochs": 3}, settings, "pr_auc", 42)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == TrialState.PRUNED
    assert list(trial.intermediate_values) == [1]
    assert 0.0 < trial.intermediate_values[1] <= 1.0


@pytest.mark.slow
def test_a_diverging_trial_fails_and_the_study_goes_on(frames, tmp_path):
    """A trial whose training diverges is recorded FAIL with its reason; the next trial completes."""
    storage = OptunaStorageDataset(credentials={"con": f"sqlite:///{tmp_path}/study.db"}).load()
    tuning = tuning_params(n_trials=1, max_failed_trials=2, study_name="diverging")
    study = open_study(storage, parse(TuningParams, tuning, "tuning"), "pr_auc", 42, 1)
    fixed = {
        "batch_size": 64,
        "hidden_layers": 2,
        "units": 32,
        "dropout": 0.0,
        "l2": 1e-6,
        "optimizer": "sgd",
    }
    study.enqueue_trial({**fixed, "learning_rate": 1e20})
    study.enqueue_trial({**fixed, "learning_rate": 1e-2})
    tuning["search_space"]["learning_rate"] = {
        "type": "float",
        "low": 1e-4,
        "high": 1e20,
        "log": True,
    }
    result = run_study(
        storage,
        gather_tuning_data(frames["train"], frames["train_balanced"], frames["val"], ROLES),
        MODELLING,
        PROBLEM,
        tuning,
        42,
    )
    failed, completed = result.trials
    assert failed.state == TrialState.FAIL and "diverged" in failed.user_attrs["error"]
    assert completed.state == TrialState.COMPLETE and 0.0 < completed.value <= 1.0
    assert completed.params["learning_rate"] == 1e-2


def test_overrides_reach_nested_keys_without_touching_the_original():
    original = {"early_stopping": {"patience": 3}}
    merged = merge_overrides(original, {"early_stopping.patience": 1, "units": 32})
    assert merged == {"early_stopping": {"patience": 1}, "units": 32}
    assert original == {"early_stopping": {"patience": 3}}


@pytest.mark.slow
def test_trial_score_matches_the_shared_metric_of_predicted_probabilities(frames):
    from deep_learning_workflow.columns import target_labels
    from deep_learning_workflow.metrics import score
    from deep_learning_workflow.model_inputs import predict_probabilities
    from deep_learning_workflow.models.fitting import train_model
    from deep_learning_workflow.pipelines.tuning.trial import validation_score

    result = train_model(frames["train"], frames["val"], ROLES, MODELLING, 42)
    val = frames["val"]
    expected = score(
        "pr_auc",
        target_labels(val["churn"]).to_numpy(),
        predict_probabilities(result.model, val, result.roles),
        result.classes,
        "Yes",
    )
    got = validation_score(result.model, val, result.roles, result.classes, "pr_auc")
    assert got == pytest.approx(expected, abs=1e-6)


def test_the_tuned_model_metadata_records_its_selection_on_validation():
    from deep_learning_workflow.pipelines.tuning.nodes import record_tuning_selection

    metadata = {"classes": ["No", "Yes"], "validation_selection_bias": False}
    best = {"study_name": "s", "trial": 3, "ranking": "r", "candidates": [{}, {}, {}]}
    marked = record_tuning_selection(metadata, best)
    assert marked["validation_selection_bias"] is True and marked["classes"] == ["No", "Yes"]
    assert marked["tuning_selection"] == {
        "study_name": "s",
        "trial": 3,
        "ranking": "r",
        "candidates": 3,
    }
    assert metadata["validation_selection_bias"] is False  # the input is not changed
