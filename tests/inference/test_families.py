"""Parity of the fast path with the ``.keras`` model (rtol 1e-5) for each model family it serves, on real review rows
with an unseen category, missing numeric values and text (an empty one among them), scored as a batch and one
record at a time, after a save and a ``safe_mode`` load like the service's.

- ``mlp``: the modelling pipeline's own model, trained briefly;
- a seed ensemble: one preprocessor, two trained heads (functional models called as layers), ``Average``;
- ``plr_mlp`` (full and lite periodic embeddings) and ``tabm`` (with and without them): the project's own
  family layers, built by the modelling code.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets import load_keras_model
from deep_learning_workflow.inference import compile_engine, probe_columns
from deep_learning_workflow.inference.folded import FirstLayer
from deep_learning_workflow.model_inputs import to_model_inputs
from tests.service.bundles import bundle_metadata, review_frame, train_model

RTOL, ATOL = 1e-5, 1e-7
ROLES = ColumnRoles(
    key="review_id",
    target="score",
    positive_class="great",
    numeric=["review_length", "word_count"],
    categorical=["product_id"],
    text=["review"],
)


def reviews(rows: int, seed: int) -> pd.DataFrame:
    frame = review_frame(rows, seed=seed)
    return frame.assign(
        review_length=frame["review"].str.len().astype("float64"),
        word_count=frame["review"].str.split().str.len().astype("float64"),
    )


@pytest.fixture(scope="module")
def train() -> pd.DataFrame:
    return reviews(600, seed=31)


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    """Rows the models never saw: unseen products, missing numbers, an empty and an odd text."""
    frame = reviews(200, seed=32)
    frame["product_id"] = frame["product_id"].astype(object)
    frame.loc[frame.index[::4], "product_id"] = "B0NEVERSEEN"
    frame.loc[frame.index[1::5], "review_length"] = np.nan
    frame.loc[frame.index[2::7], "word_count"] = np.nan
    frame.loc[frame.index[:2], "review"] = ["", "WOW!!! Zyxqv blorf, totally... UNSEEN words?"]
    return frame


def saved_and_loaded(model: Any, folder) -> Any:
    path = folder / f"{model.name}.keras"
    model.save(path)
    return load_keras_model(str(path), compile=False)


def assert_parity(model: Any, train: pd.DataFrame, rows: pd.DataFrame) -> Any:
    """The fast path's outputs equal the model's, batched and one record at a time; returns the engine."""
    schema = bundle_metadata(model, train, ROLES)["schema"]
    engine = compile_engine(model, probe_columns(schema), engine="numpy")
    inputs = to_model_inputs(rows, ROLES)
    expected = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    columns = {name: values.tolist() for name, values in inputs.items()}
    batch = np.asarray(engine.forward(columns), dtype=np.float64)
    single = np.vstack(
        [
            engine.forward({name: values[i : i + 1] for name, values in columns.items()})
            for i in range(len(rows))
        ]
    ).astype(np.float64)
    assert expected.shape == (len(rows), 2) and np.isfinite(expected).all()
    np.testing.assert_allclose(batch, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)
    return engine


def test_mlp_parity(train, rows, tmp_path):
    model = saved_and_loaded(train_model(train, ROLES, seed=5), tmp_path)
    assert assert_parity(model, train, rows).name == "numpy"


def seed_ensemble(
    train: pd.DataFrame, roles: ColumnRoles, seeds: list[int], **modelling: Any
) -> Any:
    """One preprocessor, one trained head per seed (functional models called as layers), ``Average``."""
    from deep_learning_workflow.columns import resolve_roles, target_classes
    from deep_learning_workflow.models.builder import build_model_parts
    from deep_learning_workflow.models.preprocessing import fit_preprocessing
    from deep_learning_workflow.models.schema import ModellingParams

    params = ModellingParams(**modelling)
    roles = resolve_roles(train, roles, "train")
    preprocessing = fit_preprocessing(train, roles, params)
    classes = target_classes(train[roles.target])
    labels = train[roles.target].astype(str).map({c: i for i, c in enumerate(classes)}).to_numpy()
    heads = []
    for seed in seeds:
        keras.utils.set_random_seed(seed)
        parts = build_model_parts(preprocessing, roles, params, len(classes))
        parts.model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
        parts.model.fit(to_model_inputs(train, roles), labels, epochs=1, verbose=0)
        # Each head under a name of its own, as the ensemble's members.
        heads.append(keras.Model(parts.head.input, parts.head.output, name=f"head_{seed}"))
    inputs = {
        name: keras.Input(shape=(1,), dtype=tensor.dtype, name=name)
        for name, tensor in parts.model.input.items()
    }
    prepared = parts.preprocessor(inputs)
    average = keras.layers.Average(name="ensemble")([head(prepared) for head in heads])
    return keras.Model(inputs, average, name="seed_ensemble")


def test_seed_ensemble_with_text_parity(train, rows, tmp_path):
    model = seed_ensemble(
        train, ROLES, [11, 12], text={"max_tokens": 500, "output_sequence_length": 16}
    )
    engine = assert_parity(saved_and_loaded(model, tmp_path), train, rows)
    # Text ops have no one-record path of their own: one record takes the batch path.
    assert engine.name == "numpy" and engine.forward._record_plan is None


def test_seed_ensemble_heads_share_one_folded_first_layer(tmp_path):
    from tests.service.bundles import TELCO_ROLES, telco_frame

    train, rows = telco_frame(900, seed=3), telco_frame(300, seed=4)
    rows["contract"] = rows["contract"].astype(object)
    rows.loc[rows.index[::3], "contract"] = "Ten years"
    rows.loc[rows.index[1::4], "tenure"] = np.nan
    model = saved_and_loaded(seed_ensemble(train, TELCO_ROLES, [1, 2, 3]), tmp_path)
    schema = bundle_metadata(model, train, TELCO_ROLES)["schema"]
    engine = compile_engine(model, probe_columns(schema), engine="numpy")
    assert sum(isinstance(step.op, FirstLayer) for step in engine.forward.steps) == 1
    inputs = to_model_inputs(rows, TELCO_ROLES)
    expected = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    columns = {name: values.tolist() for name, values in inputs.items()}
    single = np.vstack(
        [
            engine.forward({name: values[i : i + 1] for name, values in columns.items()})
            for i in range(len(rows))
        ]
    )
    np.testing.assert_allclose(engine.forward(columns), expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)


def test_one_record_of_a_plr_seed_ensemble_runs_the_row_plan(tmp_path):
    """The default family (a seed ensemble of PLR MLPs) scores one record with each op's 1-D path: the same
    probabilities as Keras and as the batch path given that one record, an unseen category and a missing value
    among them."""
    from tests.service.bundles import TELCO_ROLES, telco_frame

    train, rows = telco_frame(900, seed=5), telco_frame(120, seed=6)
    rows["contract"] = rows["contract"].astype(object)
    rows.loc[rows.index[::3], "contract"] = "Ten years"
    rows.loc[rows.index[1::4], "tenure"] = np.nan
    model = seed_ensemble(
        train,
        TELCO_ROLES,
        [1, 2, 3],
        architecture="plr_mlp",
        activation="gelu",
        plr={"frequencies": 6, "embedding_dim": 4},
    )
    model = saved_and_loaded(model, tmp_path)
    schema = bundle_metadata(model, train, TELCO_ROLES)["schema"]
    forward = compile_engine(model, probe_columns(schema), engine="numpy").forward
    assert forward._record_plan is not None
    inputs = to_model_inputs(rows, TELCO_ROLES)
    expected = np.asarray(model.predict(inputs, verbose=0), dtype=np.float64)
    records = [
        {name: values[i : i + 1].tolist() for name, values in inputs.items()}
        for i in range(len(rows))
    ]
    single = np.vstack([forward(record) for record in records])
    plan, forward._record_plan = forward._record_plan, None
    batch_path = np.vstack([forward(record) for record in records])
    forward._record_plan = plan
    np.testing.assert_allclose(single, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(single, batch_path, rtol=1e-6, atol=1e-7)


def test_plr_mlp_parity(train, rows, tmp_path):
    model = train_model(
        train, ROLES, seed=21, architecture="plr_mlp", plr={"frequencies": 6, "embedding_dim": 4}
    )
    assert assert_parity(saved_and_loaded(model, tmp_path), train, rows).name == "numpy"


def test_plr_lite_parity(train, rows, tmp_path):
    model = train_model(
        train,
        ROLES,
        seed=23,
        architecture="plr_mlp",
        plr={"frequencies": 6, "embedding_dim": 4, "lite": True},
    )
    assert assert_parity(saved_and_loaded(model, tmp_path), train, rows).name == "numpy"


@pytest.mark.parametrize("numeric_embedding", ["none", "plr"])
def test_tabm_parity(train, rows, tmp_path, numeric_embedding):
    model = train_model(
        train,
        ROLES,
        seed=22,
        architecture="tabm",
        tabm={"members": 4, "numeric_embedding": numeric_embedding},
    )
    assert assert_parity(saved_and_loaded(model, tmp_path), train, rows).name == "numpy"


def test_ngram_text_encoder_parity(train, rows, tmp_path):
    """The n-gram encoder (tf-idf scaled to unit length) runs on the NumPy path too."""
    model = train_model(
        train,
        ROLES,
        seed=24,
        text={"encoder": "ngrams", "ngrams": 2, "output_mode": "tf_idf", "max_tokens": 500},
    )
    assert assert_parity(saved_and_loaded(model, tmp_path), train, rows).name == "numpy"


@pytest.mark.parametrize("architecture", ["mlp", "plr_mlp"])
def test_quantile_scaling_parity(train, rows, tmp_path, architecture):
    """Numeric columns mapped to normal scores (``numeric.scaling: quantile``) on the fast path, the folded first
    layer (mlp) and the periodic embeddings (plr_mlp) alike."""
    extra = {"plr": {"frequencies": 6, "embedding_dim": 4}} if architecture == "plr_mlp" else {}
    model = train_model(
        train,
        ROLES,
        seed=25,
        architecture=architecture,
        numeric={"scaling": "quantile", "quantiles": 32},
        **extra,
    )
    loaded = saved_and_loaded(model, tmp_path)
    assert loaded.get_layer("scale_review_length").__class__.__name__ == "QuantileNormal"
    assert assert_parity(loaded, train, rows).name == "numpy"


@pytest.mark.parametrize(
    "modelling",
    [
        {"architecture": "plr_mlp", "plr": {"frequencies": 6, "embedding_dim": 4}},
        {"architecture": "plr_mlp", "activation": "gelu", "text": {"max_tokens": 500}},
    ],
    ids=["plr_mlp", "plr_mlp_gelu_text"],
)
def test_seed_ensemble_members_run_stacked_with_parity(train, rows, tmp_path, modelling):
    """The default model's shape (a seed ensemble of PLR MLPs): the members' embeddings and layers run stacked,
    the outputs still the Keras model's, batched (also in row blocks) and one record at a time."""
    from deep_learning_workflow.inference import forward as forward_module
    from deep_learning_workflow.inference.families import PeriodicEmbedding

    model = saved_and_loaded(seed_ensemble(train, ROLES, [41, 42, 43], **modelling), tmp_path)
    engine = assert_parity(model, train, rows)
    assert engine.name == "numpy"
    embeddings = [s.op for s in engine.forward.steps if isinstance(s.op, PeriodicEmbedding)]
    # Every member's periodic embedding in one op: 3 members x 2 numeric columns.
    assert len(embeddings) == 1 and embeddings[0].frequencies.shape[0] == 3 * 2
    inputs = {name: v.tolist() for name, v in to_model_inputs(rows, ROLES).items()}
    whole = engine.forward(inputs)
    original = forward_module.ROW_BLOCK
    forward_module.ROW_BLOCK = 17
    try:
        blocked = engine.forward(inputs)
    finally:
        forward_module.ROW_BLOCK = original
    np.testing.assert_allclose(blocked, whole, rtol=1e-6, atol=1e-7)
