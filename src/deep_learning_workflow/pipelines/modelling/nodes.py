"""Nodes of the modelling pipeline: checks, baselines, the sanity check, training over seeds, reports.

TensorFlow is imported only inside the functions of :mod:`.training` that need it, never when this module is
imported, so listing or visualising the pipelines stays fast.
"""

from __future__ import annotations

import logging
import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from deep_learning_workflow.columns import ColumnRoles, target_classes, target_labels
from deep_learning_workflow.metrics import GREATER_IS_BETTER, score
from deep_learning_workflow.model_inputs import predict_probabilities
from deep_learning_workflow.models import transfer
from deep_learning_workflow.models.fitting import (
    encode_labels,
    monitored_metric,
    overfit_one_batch,
    train_model,
)
from deep_learning_workflow.models.preprocessing import (
    as_params,
    as_roles,
    check_roles_for_modelling,
)
from deep_learning_workflow.models.schema import ModellingParams
from deep_learning_workflow.parameters import parse
from deep_learning_workflow.problem import ProblemDefinition
from deep_learning_workflow.progress import keras_verbose

logger = logging.getLogger(__name__)

BASELINES = ("majority_class", "logistic_regression", "gradient_boosting")


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


def _as_float(frame: pd.DataFrame) -> np.ndarray:
    return frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _as_strings(frame: pd.DataFrame) -> np.ndarray:
    # The same strings the Keras model sees (model_inputs.to_model_inputs): "" for a missing value.
    return np.column_stack(
        [np.where(frame[c].isna(), "", frame[c].astype(str)) for c in frame.columns]
    ).astype(object)


def _text_as_strings(series: pd.Series) -> list[str]:
    return [str(value) for value in series.fillna("")]


def build_baseline(name: str, roles: ColumnRoles, params: ModellingParams, seed: int) -> Pipeline:
    """An unfitted scikit-learn baseline whose preprocessing is fitted with it, on the rows it is fitted on.

    Args:
        name: one of :data:`BASELINES`.
        roles: resolved column roles.
        params: ``params:modelling`` (imputation, class weights and the baselines' own settings).
        seed: random state.

    Returns:
        ``Pipeline(preprocess=ColumnTransformer, classifier=...)`` taking a raw frame of the feature columns.
    """
    if name not in BASELINES:
        raise ValueError(f"Unknown baseline '{name}'; choose one of {list(BASELINES)}.")
    numeric_steps = [
        ("to_float", FunctionTransformer(_as_float)),
        ("impute", SimpleImputer(strategy=params.numeric.imputation)),
        ("scale", StandardScaler()),
    ]
    transformers: list[tuple[str, Any, Any]] = []
    if roles.numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), list(roles.numeric)))
    if roles.categorical:
        encoder = OneHotEncoder(
            handle_unknown="ignore",
            min_frequency=params.categorical.min_frequency,
            sparse_output=False,
        )
        transformers.append(
            (
                "categorical",
                Pipeline([("to_str", FunctionTransformer(_as_strings)), ("one_hot", encoder)]),
                list(roles.categorical),
            )
        )
    for column in roles.text:
        tfidf = TfidfVectorizer(max_features=params.baselines.text_max_features)
        transformers.append(
            (
                f"text_{column}",
                Pipeline([("to_str", FunctionTransformer(_text_as_strings)), ("tfidf", tfidf)]),
                column,
            )
        )
    class_weight = "balanced" if params.class_weight == "balanced" else None
    if name == "majority_class":
        classifier: Any = DummyClassifier(strategy="prior")
    elif name == "logistic_regression":
        settings = params.baselines.logistic_regression
        classifier = LogisticRegression(
            C=settings.C, max_iter=settings.max_iter, class_weight=class_weight, random_state=seed
        )
    else:
        settings = params.baselines.gradient_boosting
        classifier = HistGradientBoostingClassifier(
            learning_rate=settings.learning_rate,
            max_iter=settings.max_iter,
            max_leaf_nodes=settings.max_leaf_nodes,
            l2_regularization=settings.l2_regularization,
            early_stopping=settings.early_stopping,
            class_weight=class_weight,
            random_state=seed,
        )
    # Dense output: gradient boosting takes no sparse matrix.
    preprocess = ColumnTransformer(
        transformers, remainder="drop", sparse_threshold=0.0 if name == "gradient_boosting" else 0.3
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def fit_baseline_models(
    train_balanced: pd.DataFrame,
    modelling_roles: dict[str, Any],
    modelling: dict[str, Any],
    seed: int,
) -> dict[str, Pipeline]:
    """Fit the majority-class, logistic-regression and gradient-boosting baselines on the model's training rows.

    Args:
        train_balanced: the rows the Keras model is fitted on (no validation or test row).
        modelling_roles: resolved column roles.
        modelling: ``params:modelling``.
        seed: ``params:seed``.

    Returns:
        Baseline name to fitted pipeline; ``predict_proba`` takes a raw frame of the feature columns and its
        columns follow ``target_classes(train[target])``.
    """
    params = as_params(modelling)
    roles = as_roles(modelling_roles)
    features = train_balanced[roles.features]
    labels = target_labels(train_balanced[roles.target])
    fitted = {}
    for name in BASELINES:
        fitted[name] = build_baseline(name, roles, params, seed).fit(features, labels)
    return fitted


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
        The report (see :func:`deep_learning_workflow.models.fitting.overfit_one_batch`), or ``{"enabled": false}`` when switched off.

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


def train_seed_models(  # noqa: PLR0913
    train: pd.DataFrame,
    train_balanced: pd.DataFrame,
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

    Args:
        train: the real training rows (the preprocessing is adapted on them only).
        train_balanced: the rows the weights are fitted on.
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
    results, runs = [], []
    for offset in range(params.seeds):
        result = train_model(
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
        run = {
            "seed": seed + offset,
            "epochs_run": len(result.history["loss"]),
            "best_epoch": result.best_epoch + 1,
            "patience": result.patience,
            "validation": _validation_metrics(result.model, val, roles, result.classes),
        }
        logger.info(
            "Seed %d: validation %s = %.4f (best epoch %d)",
            run["seed"],
            primary,
            run["validation"][primary],
            run["best_epoch"],
        )
        results.append(result)
        runs.append(run)
    model, kept, selection = _combine_seeds(results, runs, params, primary, val, roles)
    history = {
        "seed": runs[kept]["seed"],
        "best_epoch": runs[kept]["best_epoch"],
        "epochs_run": runs[kept]["epochs_run"],
        "monitor": monitor,
        # The rows behind the history's val_ curves: a holdout of the fitted rows, or the validation split.
        "watched": "holdout" if _watches_holdout(params) else "val",
        "class_prior_loss": _class_prior_loss(train_balanced[roles.target], results[kept].classes),
        "history": results[kept].history,
    }
    report = {
        "primary_metric": primary,
        "monitor": monitor,
        "seeds": runs,
        "summary": {
            name: _summary([r["validation"][name] for r in runs]) for name in GREATER_IS_BETTER
        },
        **selection,
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


def _class_prior_loss(target: pd.Series, classes: list[str]) -> float:
    """Cross-entropy of always predicting the class frequencies: the loss a model that learned nothing reaches."""
    shares = (
        target_labels(target)
        .value_counts(normalize=True)
        .reindex(classes, fill_value=0.0)
        .to_numpy()
    )
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


def plot_training_history(training_history: dict[str, Any]) -> Any:
    """Learning curves of the kept model: loss and each metric per epoch, fitted rows vs the rows early stopping
    watched (the holdout of ``params:modelling.early_stopping.holdout``, or validation), best epoch marked.

    Returns:
        A plotly figure (kedro-viz previews it).
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    history = training_history["history"]
    names = [key for key in history if not key.startswith("val_") and f"val_{key}" in history]
    figure = make_subplots(
        rows=len(names), cols=1, shared_xaxes=True, subplot_titles=names, vertical_spacing=0.06
    )
    for row, name in enumerate(names, start=1):
        epochs = list(range(1, len(history[name]) + 1))
        watched = "held out" if training_history.get("watched") == "holdout" else "validation"
        for key, label, dash in ((name, "train", "solid"), (f"val_{name}", watched, "dash")):
            figure.add_trace(
                go.Scatter(
                    x=epochs,
                    y=history[key],
                    mode="lines+markers",
                    name=label,
                    legendgroup=label,
                    showlegend=row == 1,
                    line={"dash": dash, "color": "#1f77b4" if key == name else "#ff7f0e"},
                ),
                row=row,
                col=1,
            )
        figure.add_vline(
            x=training_history["best_epoch"], line={"dash": "dot", "color": "grey"}, row=row, col=1
        )
    figure.update_xaxes(title_text="epoch", row=len(names), col=1)
    figure.update_layout(
        title=f"Training history (seed {training_history['seed']}; dotted: best epoch {training_history['best_epoch']})",
        height=260 * len(names),
        template="plotly_white",
    )
    return figure


ADVICE = {
    "unstable": (
        "Learning is unstable: lower params:modelling.learning_rate (e.g. by 3x), raise batch_size, or turn on "
        "batch_norm; check the inputs for extreme values (numeric.clip_quantiles)."
    ),
    "overfitting": (
        "The model overfits after its best epoch (early stopping kept the best weights): raise dropout or l2, "
        "use fewer hidden_layers or units, or add training rows."
    ),
    "underfitting": (
        "The model underfits: train longer (epochs, early_stopping.patience) or with a higher learning_rate, "
        "use more units or hidden_layers, lower dropout or l2, and compare with the baselines to check that the "
        "features carry signal."
    ),
}


def diagnose_training(
    training_history: dict[str, Any], modelling: dict[str, Any]
) -> dict[str, Any]:
    """Read the learning curves for unstable learning, overfitting and underfitting.

    - unstable: the training loss rises in at least ``diagnosis.unstable_rises`` of the epochs, or spikes above
      ``diagnosis.unstable_spike`` times its lowest value so far;
    - overfitting: the gap between validation and training loss grows by more than ``diagnosis.overfitting_gap``
      from the best epoch to the last while the validation loss rises;
    - underfitting: at the best epoch the training loss is still above ``diagnosis.underfitting_loss_ratio``
      times the class-prior loss (both curves poor), or the best epoch is the last of all ``epochs`` (still
      improving when training stopped).

    Returns:
        ``flags`` (name to bool), ``evidence`` (the numbers behind them), ``advice`` (one line per raised flag),
        ``healthy`` (no flag).
    """
    params = as_params(modelling)
    settings = params.diagnosis
    history = training_history["history"]
    loss = np.asarray(history["loss"], dtype="float64")
    val_loss = np.asarray(history.get("val_loss", loss), dtype="float64")
    best = int(training_history["best_epoch"]) - 1
    last = len(loss) - 1
    rises = float(np.mean(np.diff(loss) > 1e-4 * np.abs(loss[:-1]))) if loss.size > 1 else 0.0
    running_min = np.minimum.accumulate(loss)
    spike = float(np.max(loss[1:] / running_min[:-1])) if loss.size > 1 else 1.0
    gap = val_loss - loss
    gap_growth = float(gap[last] - gap[best])
    prior = float(training_history["class_prior_loss"])
    loss_ratio = float(loss[best] / prior) if prior > 0 else 0.0
    still_improving = best == last and len(loss) >= params.epochs
    flags = {
        "unstable": bool(
            (loss.size >= 4 and rises >= settings.unstable_rises) or spike > settings.unstable_spike
        ),
        "overfitting": bool(
            gap_growth > settings.overfitting_gap and val_loss[last] > val_loss[best]
        ),
        "underfitting": bool(loss_ratio > settings.underfitting_loss_ratio or still_improving),
    }
    return {
        "flags": flags,
        "evidence": {
            "epochs_run": int(loss.size),
            "best_epoch": best + 1,
            "share_of_epochs_with_rising_train_loss": rises,
            "largest_train_loss_jump": spike,
            "loss_gap_at_best_epoch": float(gap[best]),
            "loss_gap_at_last_epoch": float(gap[last]),
            "loss_gap_growth": gap_growth,
            "train_loss_over_class_prior_loss": loss_ratio,
            "still_improving_at_last_epoch": bool(still_improving),
        },
        "advice": [ADVICE[name] for name, raised in flags.items() if raised],
        "healthy": not any(flags.values()),
    }
