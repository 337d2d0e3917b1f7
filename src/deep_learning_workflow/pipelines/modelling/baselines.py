"""The scikit-learn baselines the model must beat: built with their preprocessing, fitted on the model's rows."""

from __future__ import annotations

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

from deep_learning_workflow.columns import ColumnRoles, target_labels
from deep_learning_workflow.models.preprocessing import as_params, as_roles
from deep_learning_workflow.models.schema import ModellingParams

BASELINES = ("majority_class", "logistic_regression", "gradient_boosting")


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
    # Dense output: gradient boosting takes no sparse matrix.
    preprocess = ColumnTransformer(
        _column_transformers(roles, params),
        remainder="drop",
        sparse_threshold=0.0 if name == "gradient_boosting" else 0.3,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", _classifier(name, params, seed))])


def _column_transformers(roles: ColumnRoles, params: ModellingParams) -> list[tuple[str, Any, Any]]:
    """Numeric columns imputed and scaled, categorical ones one-hot encoded, each text column TF-IDF."""
    transformers: list[tuple[str, Any, Any]] = []
    if roles.numeric:
        numeric_steps = [
            ("to_float", FunctionTransformer(_as_float)),
            ("impute", SimpleImputer(strategy=params.numeric.imputation)),
            ("scale", StandardScaler()),
        ]
        transformers.append(("numeric", Pipeline(numeric_steps), list(roles.numeric)))
    if roles.categorical:
        encoder = OneHotEncoder(
            handle_unknown="ignore",
            min_frequency=params.categorical.min_frequency,
            sparse_output=False,
        )
        categorical_steps = [("to_str", FunctionTransformer(_as_strings)), ("one_hot", encoder)]
        transformers.append(("categorical", Pipeline(categorical_steps), list(roles.categorical)))
    for column in roles.text:
        tfidf = TfidfVectorizer(max_features=params.baselines.text_max_features)
        text_steps = [("to_str", FunctionTransformer(_text_as_strings)), ("tfidf", tfidf)]
        transformers.append((f"text_{column}", Pipeline(text_steps), column))
    return transformers


def _classifier(name: str, params: ModellingParams, seed: int) -> Any:
    class_weight = "balanced" if params.class_weight == "balanced" else None
    if name == "majority_class":
        return DummyClassifier(strategy="prior")
    if name == "logistic_regression":
        settings = params.baselines.logistic_regression
        return LogisticRegression(
            C=settings.C, max_iter=settings.max_iter, class_weight=class_weight, random_state=seed
        )
    settings = params.baselines.gradient_boosting
    return HistGradientBoostingClassifier(
        learning_rate=settings.learning_rate,
        max_iter=settings.max_iter,
        max_leaf_nodes=settings.max_leaf_nodes,
        l2_regularization=settings.l2_regularization,
        early_stopping=settings.early_stopping,
        class_weight=class_weight,
        random_state=seed,
    )


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
