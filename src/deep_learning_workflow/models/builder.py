"""Build a model from its fitted preprocessing and ``params:modelling``: raw records in, probabilities out.

The model has one input per feature column (keyed by the raw column name, named by :mod:`.names`), the fixed
preprocessing layers of each column, then the trainable head of the chosen family (:mod:`.architectures`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from deep_learning_workflow.columns import ColumnRoles

from .architectures import build_head
from .names import keras_names, layer_name, raw_input_keys
from .preprocessing import text_vectorization
from .schema import ModellingParams

NUMERIC = "numeric"
"""The preprocessor output holding the scaled numeric values when a family embeds them."""
ENCODED = "encoded"
"""The preprocessor output holding every other fixed feature (one-hot categories, indicators, n-grams)."""


class ModelParts(NamedTuple):
    """The model and two views of it that share its layers (and so its weights)."""

    model: Any
    """Raw records -> probabilities: the artifact (preprocessing layers, then the head)."""
    preprocessor: Any
    """Raw records -> the fixed preprocessing outputs (a dict by layer name); nothing in it is trained."""
    head: Any
    """Preprocessing outputs -> training output: the trainable layers (embeddings, hidden layers, output).

    (rows, classes) probabilities, or (rows, members, classes) for a family of several members."""
    members: int = 1
    """Members whose probabilities the model averages (see :mod:`.architectures.tabm`)."""


def build_model(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, params: ModellingParams, n_classes: int
) -> Any:
    """The Keras model: one input per feature column, preprocessing layers, the family's head, probabilities.

    Args:
        preprocessing: the state from :func:`~.preprocessing.fit_preprocessing`.
        roles: resolved column roles.
        params: modelling parameters.
        n_classes: number of target classes (2 for a binary target).

    Returns:
        An uncompiled functional ``keras.Model`` following the project's model contract (layer names by column).
    """
    return build_model_parts(preprocessing, roles, params, n_classes).model


def _numeric_inputs(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, names: Mapping[str, str]
) -> tuple[dict[str, Any], list[tuple[Any, Any]]]:
    """The numeric inputs and, per column, its scaled value and missing indicator (or None)."""
    import keras

    from . import layers as custom

    inputs: dict[str, Any] = {}
    columns = []
    for column in roles.numeric or []:
        state = preprocessing["numeric"][column]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="float32", name=names[column])
        value = custom.ImputeMissing(state["fill_value"], name=layer_name("impute", column))(raw)
        if state["clip"] is not None:
            value = custom.ClipValues(*state["clip"], name=layer_name("clip", column))(value)
        if state["scaling"] == "quantile":
            value = custom.QuantileNormal(
                state["knots"], state["scores"], name=layer_name("scale", column)
            )(value)
        elif state["scaling"] != "none":
            value = keras.layers.Normalization(
                mean=state["mean"], variance=state["variance"], name=layer_name("scale", column)
            )(value)
        indicator = (
            custom.MissingIndicator(name=layer_name("missing", column))(raw)
            if state["indicator"]
            else None
        )
        columns.append((value, indicator))
    return inputs, columns


def _string_inputs(
    preprocessing: Mapping[str, Any],
    roles: ColumnRoles,
    params: ModellingParams,
    names: Mapping[str, str],
) -> tuple[dict[str, Any], list[Any], dict[str, tuple[Any, int, int]]]:
    """The categorical and text inputs, their fixed dense encodings and the integer ids of embedded ones."""
    import keras

    inputs: dict[str, Any] = {}
    dense: list[Any] = []
    ids: dict[str, tuple[Any, int, int]] = {}
    for column in roles.categorical or []:
        vocabulary = preprocessing["categorical"][column]["vocabulary"]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="string", name=names[column])
        one_hot = params.categorical.encoding == "one_hot"
        encoded = keras.layers.StringLookup(
            vocabulary=vocabulary or None,
            num_oov_indices=1,
            output_mode="one_hot" if one_hot else "int",
            name=layer_name("lookup", column),
        )(raw)
        if one_hot:
            dense.append(encoded)
        else:
            ids[names[column]] = (encoded, len(vocabulary) + 1, params.categorical.embedding_dim)
    for column in roles.text:
        state = preprocessing["text"][column]
        raw = inputs[column] = keras.Input(shape=(1,), dtype="string", name=names[column])
        if params.text.encoder == "ngrams":
            extra = {"idf_weights": state["idf_weights"]} if "idf_weights" in state else {}
            counts = text_vectorization(
                params,
                vocabulary=state["vocabulary"] or None,
                name=layer_name("vectorize", column),
                **extra,
            )(raw)
            # TextVectorization declares (rows, 1, tokens) for a (rows, 1) input but gives (rows, tokens).
            flat = keras.layers.Flatten(name=layer_name("flatten", column))(counts)
            # Unit length, as scikit-learn's TfidfVectorizer: a long review does not get larger inputs.
            dense.append(keras.layers.UnitNormalization(name=layer_name("normalize", column))(flat))
            continue
        tokens = text_vectorization(
            params,
            output_sequence_length=params.text.output_sequence_length,
            vocabulary=state["vocabulary"] or None,
            name=layer_name("vectorize", column),
        )(raw)
        ids[names[column]] = (tokens, len(state["vocabulary"]) + 2, params.text.embedding_dim)
    return inputs, dense, ids


def build_model_parts(
    preprocessing: Mapping[str, Any], roles: ColumnRoles, params: ModellingParams, n_classes: int
) -> ModelParts:
    """Build the model together with its preprocessor and head views (see :class:`ModelParts`).

    Training fits the head on preprocessed arrays computed once by the preprocessor: the string lookups then run
    once per row instead of once per row and epoch, and the weights learned are the model's own.
    """
    import keras

    if n_classes < 2:
        raise ValueError(
            f"The target has {n_classes} class in the training split; a classifier needs at least 2."
        )
    names = keras_names(roles.features)
    numeric_inputs, numeric = _numeric_inputs(preprocessing, roles, names)
    string_inputs, string_dense, ids = _string_inputs(preprocessing, roles, params, names)
    inputs = {**numeric_inputs, **string_inputs}
    head_layers = build_head(params, len(numeric), n_classes)

    # The fixed part ends in one matrix (`encoded`, or `features` when nothing is embedded), the scaled numeric
    # values when the family embeds them, and the integer ids of embedded columns: the head then takes few inputs,
    # which keeps each training step cheap.
    prepared: dict[str, Any] = {}
    if head_layers.numeric_embedding is not None:
        values = [value for value, _ in numeric]
        prepared[NUMERIC] = (
            keras.layers.Concatenate(name="numeric_values")(values)
            if len(values) > 1
            else values[0]
        )
        dense = [indicator for _, indicator in numeric if indicator is not None]
    else:
        dense = [part for pair in numeric for part in pair if part is not None]
    dense += string_dense
    if dense:
        name = ENCODED if ids or NUMERIC in prepared else "features"
        prepared[ENCODED] = (
            keras.layers.Concatenate(name=name)(dense) if len(dense) > 1 else dense[0]
        )
    prepared.update({key: tensor for key, (tensor, _, _) in ids.items()})
    # No masking in the embeddings: an all-padding (empty) text averages to the learned padding vector, not 0/0.
    embeddings = {
        key: keras.layers.Embedding(size, dim, name=layer_name("embed", key))
        for key, (_, size, dim) in ids.items()
    }
    pools = {key: keras.layers.GlobalAveragePooling1D(name=layer_name("pool", key)) for key in ids}
    concatenate = keras.layers.Concatenate(name="features") if len(prepared) > 1 else None

    def head(tensors: Mapping[str, Any]) -> Any:
        parts = []
        if NUMERIC in tensors:
            parts.append(head_layers.numeric_embedding(tensors[NUMERIC]))
        if ENCODED in tensors:
            parts.append(tensors[ENCODED])
        parts.extend(pools[key](embeddings[key](tensors[key])) for key in ids)
        return head_layers.stack(concatenate(parts) if concatenate is not None else parts[0])

    output = head(prepared)
    if head_layers.members > 1:
        output = keras.layers.GlobalAveragePooling1D(name="probabilities")(output)
    with raw_input_keys():
        model = keras.Model(inputs=inputs, outputs=output, name="model")
        preprocessor = keras.Model(inputs=inputs, outputs=prepared, name="preprocessor")
    head_inputs = {
        key: keras.Input(shape=tuple(tensor.shape[1:]), dtype=tensor.dtype, name=key)
        for key, tensor in prepared.items()
    }
    return ModelParts(
        model,
        preprocessor,
        keras.Model(inputs=head_inputs, outputs=head(head_inputs), name="head"),
        head_layers.members,
    )
