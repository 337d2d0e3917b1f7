"""Parity of the fast path with the ``.keras`` model (rtol 1e-5) for each model family it serves, on real review rows
with an unseen category, missing numeric values and text (an empty one among them), scored as a batch and one
record at a time, after a save and a ``safe_mode`` load like the service's.

- ``mlp``: the modelling pipeline's own model, trained briefly;
- a seed ensemble: one preprocessor, two trained heads (functional models called as layers), ``Average``;
- periodic (PLR) embeddings and a TabM-style BatchEnsemble: layers written here to the formulas the translator
  follows, registered with the translator the way a project layer is.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pandas as pd
import pytest
from keras import ops

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.datasets import load_keras_model
from deep_learning_workflow.inference import compile_engine, probe_columns
from deep_learning_workflow.inference.folded import FirstLayer
from deep_learning_workflow.inference.layers import (
    batch_ensemble_dense,
    member_heads,
    periodic_embedding,
    register_layer,
)
from deep_learning_workflow.model_inputs import to_model_inputs
from deep_learning_workflow.pipelines.modelling import layers as custom
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
TEST_PACKAGE = "dlw_parity_test"


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
class PeriodicEmbedding(keras.layers.Layer):
    """out_j = ReLU([cos(2 pi c_j x_j), sin(2 pi c_j x_j)] @ kernel_j + bias_j), concatenated over features j."""

    def __init__(self, frequencies: int, units: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.frequencies_count, self.units = frequencies, units

    def build(self, input_shape):
        features = input_shape[-1]
        normal = keras.initializers.RandomNormal(stddev=0.5, seed=1)
        self.frequencies = self.add_weight(
            shape=(features, self.frequencies_count), initializer=normal, name="frequencies"
        )
        self.kernel = self.add_weight(
            shape=(features, 2 * self.frequencies_count, self.units),
            initializer=normal,
            name="kernel",
        )
        self.bias = self.add_weight(shape=(features, self.units), initializer=normal, name="bias")

    def call(self, inputs):
        angles = 2 * np.pi * ops.expand_dims(inputs, -1) * self.frequencies
        periodic = ops.concatenate([ops.cos(angles), ops.sin(angles)], axis=-1)
        out = ops.relu(ops.einsum("bfk,fkd->bfd", periodic, self.kernel) + self.bias)
        return ops.reshape(out, (-1, out.shape[1] * self.units))

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "frequencies": self.frequencies_count, "units": self.units}


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
class BatchEnsembleDense(keras.layers.Layer):
    """y_i = activation(((x_i * r_i) W) * s_i + b_i) for k members sharing W."""

    def __init__(self, units: int, k: int, activation: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.units, self.k, self.activation = units, k, keras.activations.get(activation)

    def build(self, input_shape):
        normal = keras.initializers.RandomNormal(mean=1.0, stddev=0.3, seed=2)
        self.r = self.add_weight(shape=(self.k, input_shape[-1]), initializer=normal, name="r")
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units), initializer="glorot_uniform", name="kernel"
        )
        self.s = self.add_weight(shape=(self.k, self.units), initializer=normal, name="s")
        self.bias = self.add_weight(
            shape=(self.k, self.units),
            initializer=keras.initializers.RandomNormal(seed=3),
            name="bias",
        )

    def call(self, inputs):
        if len(inputs.shape) == 2:
            inputs = ops.repeat(ops.expand_dims(inputs, 1), self.k, axis=1)
        return self.activation(ops.matmul(inputs * self.r, self.kernel) * self.s + self.bias)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "k": self.k,
            "activation": keras.activations.serialize(self.activation),
        }


@keras.saving.register_keras_serializable(package=TEST_PACKAGE)
class MemberHeads(keras.layers.Layer):
    """Each member's own softmax head; the output is the mean of the members' probabilities."""

    def __init__(self, classes: int, activation: str = "softmax", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if activation != "softmax":
            raise ValueError("MemberHeads averages softmax probabilities.")
        self.classes = classes

    def build(self, input_shape):
        k, width = input_shape[1], input_shape[2]
        self.kernel = self.add_weight(shape=(k, width, self.classes), name="kernel")
        self.bias = self.add_weight(
            shape=(k, self.classes),
            initializer=keras.initializers.RandomNormal(seed=4),
            name="bias",
        )

    def call(self, inputs):
        logits = ops.einsum("bkd,kdc->bkc", inputs, self.kernel) + self.bias
        return ops.mean(ops.softmax(logits, axis=-1), axis=1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "classes": self.classes, "activation": "softmax"}


register_layer(f"{TEST_PACKAGE}>PeriodicEmbedding", periodic_embedding)
register_layer(f"{TEST_PACKAGE}>BatchEnsembleDense", batch_ensemble_dense)
register_layer(f"{TEST_PACKAGE}>MemberHeads", member_heads)


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
    from deep_learning_workflow.pipelines.modelling.schema import ModellingParams
    from deep_learning_workflow.pipelines.modelling.training import (
        build_model_parts,
        fit_preprocessing,
    )

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
    assert assert_parity(saved_and_loaded(model, tmp_path), train, rows).name == "numpy"


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


def family_inputs(train: pd.DataFrame) -> tuple[dict[str, Any], list[Any], list[Any]]:
    """Raw inputs; the scaled numeric columns; the encoded categorical and text columns."""
    inputs = {
        name: keras.Input(shape=(1,), dtype="float32", name=name) for name in ROLES.numeric
    } | {
        name: keras.Input(shape=(1,), dtype="string", name=name)
        for name in ["product_id", "review"]
    }
    numeric = []
    for name in ROLES.numeric:
        values = train[name].to_numpy("float64")
        filled = custom.ImputeMissing(float(np.nanmedian(values)), name=f"impute_{name}")(
            inputs[name]
        )
        numeric.append(
            keras.layers.Normalization(
                mean=float(np.nanmean(values)),
                variance=float(np.nanvar(values)),
                name=f"scale_{name}",
            )(filled)
        )
    lookup = keras.layers.StringLookup(
        vocabulary=sorted(train["product_id"].unique()),
        output_mode="one_hot",
        name="lookup_product_id",
    )
    vectorize = keras.layers.TextVectorization(
        max_tokens=400, output_sequence_length=16, name="vectorize_review"
    )
    vectorize.adapt(train["review"].to_numpy(object))
    pooled = keras.layers.GlobalAveragePooling1D(name="pool_review")(
        keras.layers.Embedding(400, 4, name="embed_review")(vectorize(inputs["review"]))
    )
    return inputs, numeric, [lookup(inputs["product_id"]), pooled]


def test_plr_mlp_parity(train, rows, tmp_path):
    keras.utils.set_random_seed(21)
    inputs, numeric, others = family_inputs(train)
    numbers = keras.layers.Concatenate(name="numbers")(numeric)
    embedded = PeriodicEmbedding(frequencies=6, units=4, name="periodic")(numbers)
    features = keras.layers.Concatenate(name="features")([embedded, *others])
    hidden = keras.layers.Dense(16, activation="relu", name="hidden_1")(features)
    outputs = keras.layers.Dense(2, activation="softmax", name="probabilities")(hidden)
    model = saved_and_loaded(keras.Model(inputs, outputs, name="plr_mlp"), tmp_path)
    assert assert_parity(model, train, rows).name == "numpy"


def test_tabm_parity(train, rows, tmp_path):
    keras.utils.set_random_seed(22)
    inputs, numeric, others = family_inputs(train)
    features = keras.layers.Concatenate(name="features")([*numeric, *others])
    hidden = BatchEnsembleDense(16, k=4, activation="relu", name="ensemble_1")(features)
    hidden = BatchEnsembleDense(8, k=4, activation="relu", name="ensemble_2")(hidden)
    outputs = MemberHeads(2, name="probabilities")(hidden)
    model = saved_and_loaded(keras.Model(inputs, outputs, name="tabm"), tmp_path)
    engine = assert_parity(model, train, rows)
    # The first TabM layer runs as one Dense over its members' kernels, folded over the columns' branches.
    assert engine.name == "numpy"
    assert any(isinstance(step.op, FirstLayer) for step in engine.forward.steps)
