"""Nodes of the modelling pipeline: checks, the sanity check, training over seeds, the model's description.

The baselines' nodes are in :mod:`.baselines`, the learning curves' plot and diagnosis in :mod:`.diagnosis`; this
module re-exports them, so the pipeline takes every node from here. TensorFlow is imported only inside the
training functions that need it, never when this module is imported, so listing or visualising the pipelines stays
fast.
"""

from __future__ import annotations

import logging
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_classes, target_labels
from deep_learning_workflow.metrics import GREATER_IS_BETTER, score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models import transfer
from deep_learning_workflow.models.fitting import encode_labels, monitored_metric
from deep_learning_workflow.models.preprocessing import (
    as_params,
    as_roles,
    check_roles_for_modelling,
)
from deep_learning_workflow.models.sanity import overfit_one_batch
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.models.streaming import label_counts, training_inputs
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.problem import ProblemDefinition
from deep_learning_workflow.progress import keras_verbose

from .baselines import BASELINES, build_baseline, fit_baseline_models
from .diagnosis import ADVICE, diagnose_training, plot_training_history

logger = logging.getLogger(__name__)

__all__ = [
    "ADVICE",
    "BASELINES",
    "build_baseline",
    "check_modelling_inputs",
    "check_overfit_one_batch",
    "check_transfer_sources",
    "describe_model",
    "diagnose_training",
    "fit_baseline_models",
    "plot_training_history",
    "train_seed_models",
]


def check_modelling_inputs(
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
    val: pd.DataFrame,
    columns: dict[str, Any],
    modelling: dict[str, Any],
) -> dict[str, Any]:
    """Resolve the column roles on the training split and check every input before anything is trained.

    Args:
        train: the real training rows.
        train_balanced: the rows the model is fitted on.
        val: the validation rows.
        columns: ``params:columns``.
        modelling: ``params:modelling``.

    Returns:
        The resolved roles (``params:columns`` with ``numeric`` and ``categorical`` filled in).

    Raises:
        ValueError: naming the parameter key or the dataset and column at fault.
    """
    params = as_params(modelling)
    roles = check_roles_for_modelling(train, as_roles(columns), params, "train")
    classes = target_classes(train[roles.target])
    if len(classes) < 2:
        raise ValueError(
            f"The training split's target '{roles.target}' has one class {classes}; a classifier needs two or more."
        )
    for name, frame in (("train_balanced", train_balanced), ("val", val)):
        missing = [
            column for column in [*roles.features, roles.target] if column not in frame.columns
        ]
        if missing:
            raise ValueError(
                f"Dataset '{name}' lacks the columns {missing} that params:columns names."
            )
        if frame.empty:
            raise ValueError(f"Dataset '{name}' is empty; check the splitting parameters.")
        encode_labels(frame[roles.target], classes, name)
    if roles.positive_class is not None and roles.positive_class not in classes:
        raise ValueError(
            f"params:columns.positive_class '{roles.positive_class}' is not one of the training classes {classes}."
        )
    return roles.model_dump(mode="json")


def check_overfit_one_batch(
    train: pd.DataFrame, modelling_roles: dict[str, Any], modelling: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Sanity check: the configured model must memorise one small batch of training rows.

    Args:
        train: the real training rows.
        modelling_roles: resolved column roles.
        modelling: ``params:modelling`` (``sanity_check`` holds rows, steps, learning rate, loss threshold).
        seed: ``params:seed``.

    Returns:
        The report (see :func:`deep_learning_workflow.models.sanity.overfit_one_batch`), or ``{"enabled": false}`` when switched off.

    Raises:
        ValueError: when the batch's loss stays above ``sanity_check.max_loss``, with what to check.
    """
    params = as_params(modelling)
    if not params.sanity_check.enabled:
        return {"enabled": False}
    report = {"enabled": True, **overfit_one_batch(train, as_roles(modelling_roles), params, seed)}
    if not report["passed"]:
        raise ValueError(
            f"Sanity check failed: after {report['steps']} steps on one batch of {report['rows']} training rows the "
            f"loss is {report['final_loss']:.4f} (started at {report['initial_loss']:.4f}), above "
            f"params:modelling.sanity_check.max_loss = {report['max_loss']}. A network that cannot memorise a "
            "few rows has a bug: check that the target and features are the right columns of the same rows, that "
            "the preprocessing does not blank the features (every category out of vocabulary, a constant "
            "column), and that the output has one unit per class. If the loss is still falling, raise "
            "sanity_check.steps or sanity_check.learning_rate."
        )
    return report


def check_transfer_sources(
    train: pd.DataFrame,
    modelling_roles: dict[str, Any],
    warm_start_model: Any,
    pretrained_word_vectors: Any,
    modelling: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """Check the transfer-learning sources against the data and parameters, and say what will be copied.

    Args:
        train: the real training rows (the vocabularies the embeddings are matched on are learned from them).
        modelling_roles: resolved column roles.
        warm_start_model: the saved model of catalog entry ``warm_start_model``, or None when it has no file.
        pretrained_word_vectors: the word vectors of ``pretrained_word_vectors``, or None when it has no file.
        modelling: ``params:modelling`` (``transfer`` says which source is used).

    Returns:
        The sources training takes (empty when ``transfer`` is off) and the transfer report: per layer, copied
        (and how many rows matched) or kept fresh (and why), the frozen layers, the fine-tuning settings.

    Raises:
        ValueError: naming the key and the mismatch, before any training.
    """
    roles = as_roles(modelling_roles)
    return transfer.describe_transfer(
        train,
        roles,
        as_params(modelling),
        transfer.TransferSources(warm_start_model, pretrained_word_vectors),
        len(target_classes(train[roles.target])),
    )


def _summary(values: list[float]) -> dict[str, float]:
    array = np.asarray(values, dtype="float64")
    return {
        "mean": float(array.mean()),
        "sd": float(array.std(ddof=1)) if array.size > 1 else 0.0,
        "min": float(array.min()),
        "max": float(array.max()),
    }


def _seed_run(
    result: Any, seed: int, val: pd.DataFrame, roles: Any, primary: str
) -> dict[str, Any]:
    """One seed's line of the seed report: its epochs and its validation metrics."""
    run = {
        "seed": seed,
        "epochs_run": len(result.history["loss"]),
        "best_epoch": result.best_epoch + 1,
        "patience": result.patience,
        "validation": _validation_metrics(result.model, val, roles, result.classes),
    }
    logger.info(
        "Seed %d: validation %s = %.4f (best epoch %d)",
        seed,
        primary,
        run["validation"][primary],
        run["best_epoch"],
    )
    return run


def _kept_history(
    result: Any, run: dict[str, Any], params: Any, monitor: str, class_counts: pd.Series
) -> dict[str, Any]:
    """The training history of the kept seed (the first one for an average), with what its curves watched."""
    return {
        "seed": run["seed"],
        "best_epoch": run["best_epoch"],
        "epochs_run": run["epochs_run"],
        "monitor": monitor,
        # The rows behind the history's val_ curves: a holdout of the fitted rows, or the validation split.
        "watched": "holdout" if _watches_holdout(params) else "val",
        "class_prior_loss": _class_prior_loss(class_counts, result.classes),
        "history": result.history,
    }


def train_seed_models(  # noqa: PLR0913
    train_split: Any,
    train_balanced_split: Any,
    val: pd.DataFrame,
    modelling_roles: dict[str, Any],
    modelling: dict[str, Any],
    problem: dict[str, Any],
    seed: int,
    sanity_check_report: dict[str, Any],
    transfer_sources: Any = None,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Train the configuration once per seed; the saved model averages the seeds, or keeps the best one.

    With ``params:modelling.seed_selection: average`` (the default) the model is one Keras model taking raw
    records: the shared preprocessing, each seed's head, the mean of their probabilities. Its validation metrics
    are those of one model, like each baseline's. With ``best`` the seed with the best validation primary metric
    is kept: a smaller model, but its validation metrics are the maximum of ``seeds`` scores, so the report and
    the metadata record ``validation_selection_bias: true``.

    A training split of more rows than ``params:modelling.streaming.min_rows`` is streamed from its Parquet file
    (:mod:`deep_learning_workflow.models.streaming`); a smaller one is loaded into pandas.

    Args:
        train_split: the real training rows' file (the preprocessing is adapted on them only).
        train_balanced_split: the file of the rows the weights are fitted on.
        val: validation rows: early stopping, the seeds' scores and (``best``) the choice between seeds only.
        modelling_roles: resolved column roles.
        modelling: ``params:modelling``.
        problem: ``params:problem`` (the primary metric).
        seed: ``params:seed``; model ``i`` uses ``seed + i``.
        sanity_check_report: the sanity check's report; training starts only after it passed.
        transfer_sources: what :func:`check_transfer_sources` checked; the layers ``params:modelling.transfer``
            names start from it (model ``i`` from member ``i`` of a warm-start ensemble, cycling).

    Returns:
        The saved Keras model, the training history of its first seed (or of the kept seed), and the seed report:
        every validation metric per seed, mean and sd over seeds, the saved model's validation metrics and how
        it was chosen.
    """
    params = as_params(modelling)
    roles = as_roles(modelling_roles)
    primary = parse(ProblemDefinition, problem, "problem").primary_metric
    monitor, _ = monitored_metric(params, primary)
    train, train_balanced, trainer, streamed = training_inputs(
        train_split, train_balanced_split, params, seed
    )
    results, runs = [], []
    for offset in range(params.seeds):
        result = trainer(
            train,
            val,
            roles,
            params,
            seed + offset,
            fit_on=train_balanced,
            primary_metric=primary,
            verbose=keras_verbose(),
            transfer_sources=transfer.member_sources(transfer_sources, offset),
        )
        results.append(result)
        runs.append(_seed_run(result, seed + offset, val, roles, primary))
    model, kept, selection = _combine_seeds(results, runs, params, primary, val, roles)
    counts = (
        label_counts(train_balanced, roles.target, params.streaming.chunk_rows)
        if streamed
        else target_labels(train_balanced[roles.target]).value_counts()
    )
    history = _kept_history(results[kept], runs[kept], params, monitor, counts)
    report = {
        "primary_metric": primary,
        "monitor": monitor,
        "seeds": runs,
        "summary": {
            name: _summary([r["validation"][name] for r in runs]) for name in GREATER_IS_BETTER
        },
        **selection,
        "streamed": streamed,
        "sanity_check_passed": bool(
            sanity_check_report.get("passed", not sanity_check_report.get("enabled", True))
        ),
    }
    return model, history, report


def _watches_holdout(params: ModellingParams) -> bool:
    return params.early_stopping.enabled and params.early_stopping.holdout > 0


def _validation_metrics(
    model: Any, val: pd.DataFrame, roles: ColumnRoles, classes: list[str]
) -> dict[str, float]:
    probabilities = predict_probabilities(model, val, roles)
    labels = target_labels(val[roles.target]).to_numpy()
    return {
        name: score(name, labels, probabilities, classes, roles.positive_class)
        for name in GREATER_IS_BETTER
    }


def _combine_seeds(  # noqa: PLR0913
    results: list[Any],
    runs: list[dict[str, Any]],
    params: ModellingParams,
    primary: str,
    val: pd.DataFrame,
    roles: ColumnRoles,
) -> tuple[Any, int, dict[str, Any]]:
    """The saved model, the index of the seed whose history is shown, and the report's selection fields."""
    from deep_learning_workflow.models.ensemble import build_ensemble, check_shared_preprocessing

    ensemble_validation = None
    if len(results) > 1:
        check_shared_preprocessing([r.preprocessing for r in results])
        ensemble = build_ensemble(results[0].preprocessor, [r.head for r in results])
        ensemble_validation = _validation_metrics(ensemble, val, roles, results[0].classes)
    values = [run["validation"][primary] for run in runs]
    best = int(np.argmax(values) if GREATER_IS_BETTER[primary] else np.argmin(values))
    averaged = params.seed_selection == "average" and len(results) > 1
    selection = {
        "seed_selection": params.seed_selection,
        "model_seeds": [run["seed"] for run in runs] if averaged else [runs[best]["seed"]],
        "kept_seed": None if averaged else runs[best]["seed"],
        "kept_validation": ensemble_validation if averaged else runs[best]["validation"],
        "ensemble_validation": ensemble_validation,
        # The kept seed's validation metrics are the best of several validation scores: optimistic.
        "validation_selection_bias": not averaged and len(results) > 1,
    }
    logger.info(
        "Saved model: %s, validation %s = %.4f.",
        f"mean of {len(results)} seeds" if averaged else f"seed {runs[best]['seed']}",
        primary,
        selection["kept_validation"][primary],
    )
    return (ensemble if averaged else results[best].model), (0 if averaged else best), selection


def _class_prior_loss(counts: pd.Series, classes: list[str]) -> float:
    """Cross-entropy of always predicting the class frequencies: the loss a model that learned nothing reaches."""
    shares = (counts / counts.sum()).reindex(classes, fill_value=0.0).to_numpy()
    shares = shares[shares > 0]
    return float(-(shares * np.log(shares)).sum())


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def describe_model(
    train: pd.DataFrame,
    modelling_roles: dict[str, Any],
    seed_report: dict[str, Any],
    modelling: dict[str, Any],
    seed: int,
) -> dict[str, Any]:
    """The model's metadata: what it takes, what it returns, how it was trained.

    Args:
        train: the real training rows (the classes come from them).
        modelling_roles: resolved column roles.
        seed_report: the seed report (the saved model's seeds, validation metrics and selection).
        modelling: ``params:modelling``.
        seed: ``params:seed``.

    Returns:
        JSON-serialisable metadata: ``classes`` (the order of the probability columns), ``positive_class``,
        ``target``, ``key``, ``roles``, ``feature_columns``, ``inputs`` (column to input dtype), ``seed`` (of the
        kept model; null for an average of seeds), ``seeds`` (trained), ``model_seeds`` (in the saved model),
        ``seed_selection``, ``ensemble_members``, ``validation_selection_bias`` (true when ``validation`` is the
        best of several seeds' scores, so optimistic), ``workflow_seed``, ``primary_metric``, ``validation``,
        ``params``, ``versions``.
    """
    roles = as_roles(modelling_roles)
    params = as_params(modelling)
    classes = target_classes(train[roles.target])
    inputs = {column: "float32" for column in roles.numeric or []}
    inputs |= {column: "string" for column in [*(roles.categorical or []), *roles.text]}
    return {
        "classes": classes,
        "positive_class": roles.positive_class if len(classes) == 2 else None,
        "target": roles.target,
        "key": roles.key,
        "roles": {"numeric": roles.numeric, "categorical": roles.categorical, "text": roles.text},
        "feature_columns": roles.features,
        "inputs": inputs,
        "output": {"layer": "probabilities", "shape": ["rows", len(classes)]},
        "seed": seed_report["kept_seed"],
        "seeds": [run["seed"] for run in seed_report["seeds"]],
        "model_seeds": seed_report["model_seeds"],
        "seed_selection": seed_report["seed_selection"],
        "ensemble_members": len(seed_report["model_seeds"]),
        "validation_selection_bias": seed_report["validation_selection_bias"],
        "workflow_seed": seed,
        "primary_metric": seed_report["primary_metric"],
        "validation": seed_report["kept_validation"],
        "params": params.model_dump(mode="json"),
        "versions": {
            "keras": _version("keras"),
            "tensorflow": _version("tensorflow"),
            "scikit-learn": _version("scikit-learn"),
            "python": platform.python_version(),
        },
    }
