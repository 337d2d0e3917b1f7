"""Real serving bundles for the service tests and benchmarks: small Keras models trained briefly on the demo data
with the modelling pipeline's own preprocessing and model builder, written with :func:`write_bundle`."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deep_learning_workflow.bundle import (
    FORMAT_VERSION,
    MODEL_FILE,
    write_bundle,
)
from deep_learning_workflow.columns import ColumnRoles, resolve_roles, target_classes
from deep_learning_workflow.fingerprints import model_fingerprint
from deep_learning_workflow.model_inputs import to_model_inputs

PROJECT = Path(__file__).resolve().parents[2]
TELCO = PROJECT / "data" / "01_raw" / "telco_churn.csv"
REVIEWS = PROJECT / "data" / "01_raw" / "food_reviews.csv"

TELCO_ROLES = ColumnRoles(
    key="customer_id",
    target="churn",
    positive_class="Yes",
    numeric=["tenure", "monthly_charges", "total_charges"],
    categorical=[
        "female",
        "senior_citizen",
        "partner",
        "dependents",
        "phone_service",
        "multiple_lines",
        "internet_service",
        "online_security",
        "online_backup",
        "device_protection",
        "tech_support",
        "streaming_tv",
        "streaming_movies",
        "contract",
        "paperless_billing",
        "payment_method",
    ],
)
REVIEW_ROLES = ColumnRoles(
    key="review_id",
    target="score",
    positive_class="great",
    numeric=[],
    categorical=["product_id"],
    text=["review"],
)


def telco_frame(rows: int = 1500, seed: int = 0) -> pd.DataFrame:
    """Rows of the Telco demo table (with the rows whose total_charges is missing)."""
    frame = pd.read_csv(TELCO)
    missing = frame[frame["total_charges"].isna()]
    sample = frame.drop(index=missing.index).sample(rows - len(missing), random_state=seed)
    return pd.concat([missing, sample]).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def review_frame(rows: int = 1200, seed: int = 0) -> pd.DataFrame:
    return pd.read_csv(REVIEWS).sample(rows, random_state=seed).reset_index(drop=True)


def train_model(frame: pd.DataFrame, roles: ColumnRoles, seed: int = 0, **modelling: Any) -> Any:
    """A model following the project's contract, built by the modelling code and trained for two epochs."""
    import keras

    from deep_learning_workflow.models.builder import build_model
    from deep_learning_workflow.models.preprocessing import fit_preprocessing
    from deep_learning_workflow.models.schema import ModellingParams

    keras.utils.set_random_seed(seed)
    params = ModellingParams(**modelling)
    roles = resolve_roles(frame, roles, "train")
    classes = target_classes(frame[roles.target])
    model = build_model(fit_preprocessing(frame, roles, params), roles, params, len(classes))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    labels = frame[roles.target].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    model.fit(to_model_inputs(frame, roles), labels, epochs=2, batch_size=64, verbose=0)
    return model


def bundle_metadata(
    model: Any, train: pd.DataFrame, roles: ColumnRoles, threshold: float = 0.5
) -> dict[str, Any]:
    """``bundle.json`` as the serving pipeline writes it (schema and reference from its own functions)."""
    from deep_learning_workflow.inference.drift import reference_statistics
    from deep_learning_workflow.pipelines.serving.nodes import input_schema

    roles = resolve_roles(train, roles, "train")
    classes = target_classes(train[roles.target])
    fingerprint = model_fingerprint(model)
    binary = len(classes) == 2
    return {
        "format_version": FORMAT_VERSION,
        "model_version": fingerprint[:12],
        "model_sha256": fingerprint,
        "model_file": MODEL_FILE,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "classes": classes,
        "positive_class": roles.positive_class if binary else None,
        "decision_threshold": threshold if binary else None,
        "key": roles.key,
        "target": roles.target,
        "features": roles.features,
        "schema": input_schema(train, roles),
        "reference": reference_statistics(train, roles, 10),
        "release_gate": {"passed": True, "judged_this_model": True, "forced": False},
        "versions": {
            "python": None,
            "deep_learning_workflow": None,
            "tensorflow": None,
            "keras": None,
        },
    }


def build_bundle(
    path: Path,
    frame: pd.DataFrame,
    roles: ColumnRoles,
    seed: int = 0,
    threshold: float = 0.5,
    **modelling: Any,
) -> Path:
    """Train a model and write its serving bundle to ``path``."""
    model = train_model(frame, roles, seed=seed, **modelling)
    write_bundle(path, model, bundle_metadata(model, frame, roles, threshold))
    return Path(path)


def raw_records(frame: pd.DataFrame, roles: ColumnRoles) -> list[dict[str, Any]]:
    """Rows as JSON records a client would send: feature columns only, NaN as null, numpy scalars as Python."""
    roles = resolve_roles(frame, roles, "records")
    subset = frame[roles.features].astype(object).where(frame[roles.features].notna(), None)
    return [
        {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}
        for row in subset.to_dict("records")
    ]


def coverage_model(frame: pd.DataFrame):
    """Layer kinds and settings the modelling defaults do not use: an adapted Normalization, IntegerLookup,
    Embedding(mask_zero) with masked pooling, TextVectorization tf_idf with bigrams, a one-hot StringLookup,
    BatchNormalization and Activation layers (and a Flatten)."""
    import keras

    from deep_learning_workflow.models import layers as custom

    keras.utils.set_random_seed(7)
    length = keras.Input(shape=(1,), name="review_length", dtype="float32")
    product = keras.Input(shape=(1,), name="product_id", dtype="string")
    review = keras.Input(shape=(1,), name="review", dtype="string")
    lengths = frame["review_length"].to_numpy("float32").reshape(-1, 1)
    filled = custom.ImputeMissing(100.0, name="impute_review_length")(length)
    normalize = keras.layers.Normalization(name="scale_review_length")
    normalize.adapt(lengths)
    buckets = keras.layers.IntegerLookup(
        vocabulary=[50, 100, 200, 400], output_mode="multi_hot", name="lookup_review_length"
    )
    products = keras.layers.StringLookup(
        vocabulary=sorted(frame["product_id"].unique())[:40],
        output_mode="one_hot",
        name="lookup_product_id",
    )
    tokens = keras.layers.TextVectorization(
        max_tokens=500, output_sequence_length=20, name="vectorize_review"
    )
    tokens.adapt(frame["review"].to_numpy(object))
    tfidf = keras.layers.TextVectorization(
        max_tokens=300, ngrams=2, output_mode="tf_idf", name="vectorize_review_tfidf"
    )
    tfidf.adapt(frame["review"].to_numpy(object))
    embedded = keras.layers.Embedding(
        tokens.vocabulary_size(), 6, mask_zero=True, name="embed_review"
    )(tokens(review))
    features = keras.layers.Concatenate(name="features")(
        [
            normalize(filled),
            custom.MissingIndicator(name="missing_review_length")(length),
            buckets(length),
            products(product),
            keras.layers.GlobalAveragePooling1D(name="pool_review")(embedded),
            # Keras infers (None, 1, 300) for this output, which is (n, 300) at run time: Flatten reconciles them.
            keras.layers.Dense(8, name="dense_tfidf")(
                keras.layers.Flatten(name="flatten_tfidf")(tfidf(review))
            ),
        ]
    )
    hidden = keras.layers.Dense(16, use_bias=False, name="hidden_1")(features)
    hidden = keras.layers.BatchNormalization(name="batch_norm_1")(hidden)
    hidden = keras.layers.Activation("tanh", name="activation_1")(hidden)
    hidden = keras.layers.Dropout(0.3, name="dropout_1")(hidden)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(hidden)
    model = keras.Model({"review_length": length, "product_id": product, "review": review}, outputs)
    model.compile("adam", "sparse_categorical_crossentropy")
    labels = (frame["score"] == "great").astype(int).to_numpy()
    inputs = {
        "review_length": lengths.reshape(-1),
        "product_id": frame["product_id"].to_numpy(object),
        "review": frame["review"].to_numpy(object),
    }
    model.fit(inputs, labels, epochs=2, batch_size=64, verbose=0)
    return model


COVERAGE_ROLES = ColumnRoles(
    key="review_id",
    target="score",
    positive_class="great",
    numeric=["review_length"],
    categorical=["product_id"],
    text=["review"],
)


def reviews_with_length(rows: int, seed: int) -> pd.DataFrame:
    frame = review_frame(rows, seed=seed)
    return frame.assign(review_length=frame["review"].str.len().astype("float64"))
