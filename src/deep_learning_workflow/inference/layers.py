"""The NumPy twin of each Keras layer kind: a registry from the layer's registered name to an op factory.

A factory gets the loaded layer and builds its op(s) from the layer's public state: ``get_config()``, its weights
by name (``layer.weights``) and, for lookups, ``get_vocabulary()``. A project layer registered for serialisation
is found under its registered name (``"deep_learning_workflow>ImputeMissing"``), a Keras layer under its class name;
a new layer kind needs one entry in :data:`LAYER_OPS` (see :func:`register_layer`). Only the idf weights of a
``tf_idf`` lookup have no public getter.

Keras is imported by the callers (the translator), never here at module import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from . import ops
from .activations import UnsupportedLayer
from .families import BatchEnsembleDense, MemberDense, PeriodicEmbedding
from .quantile import QuantileScore
from .text import Encode, LookupIndex, Vectorize

PROJECT = "deep_learning_workflow"
OpFactory = Callable[[Any], list[Any]]


def weights_by_name(layer: Any) -> dict[str, np.ndarray]:
    """The layer's weights as NumPy arrays, keyed by their short names (``kernel``, ``moving_mean`` ...)."""
    return {
        variable.name: np.asarray(value)
        for variable, value in zip(layer.weights, layer.get_weights(), strict=True)
    }


def _check_plain(layer: Any) -> None:
    if getattr(layer, "quantization_mode", None) or getattr(layer, "lora_enabled", False):
        raise UnsupportedLayer(f"{layer.name}: quantised or LoRA layer")


def lookup_index(layer: Any, vocabulary: list[Any], config: dict[str, Any]) -> LookupIndex:
    """The index part of a lookup: each vocabulary entry (mask and OOV tokens included) at its position."""
    if config.get("invert"):
        raise UnsupportedLayer(f"{layer.name}: inverted lookup")
    oov_indices = config.get("num_oov_indices", 1)
    if oov_indices != 1:
        # 0 OOV indices makes TF fail on unseen values; more than 1 hashes them with FarmHash.
        raise UnsupportedLayer(f"{layer.name}: num_oov_indices={oov_indices}")
    integer_keys = all(isinstance(entry, int | np.integer) for entry in vocabulary)
    keys = [int(entry) if integer_keys else str(entry) for entry in vocabulary]
    table = {key: index for index, key in enumerate(keys)}
    oov = config.get("oov_token", "[UNK]")
    default = table[int(oov) if integer_keys else str(oov)]
    return LookupIndex(table, default, integer_keys=integer_keys)


def lookup_encode(layer: Any, config: dict[str, Any], idf_source: Any) -> Encode | None:
    """The encoding after the index (one_hot, multi_hot, count, tf_idf), None for ``int`` output."""
    mode = config["output_mode"]
    if mode == "int":
        return None
    if config.get("sparse"):
        raise UnsupportedLayer(f"{layer.name}: sparse output")
    depth = config["max_tokens"] if config.get("pad_to_max_tokens") else layer.vocabulary_size()
    idf = np.asarray(idf_source.idf_weights) if mode == "tf_idf" else None
    return Encode(mode, int(depth), idf)


def _lookup(layer: Any) -> list[Any]:
    config = layer.get_config()
    index = lookup_index(layer, list(layer.get_vocabulary()), config)
    encode = lookup_encode(layer, config, layer)
    return [index, *([encode] if encode else [])]


def _text_vectorization(layer: Any) -> list[Any]:
    config = layer.get_config()
    if config.get("ragged"):
        raise UnsupportedLayer(f"{layer.name}: ragged output")
    ngrams = config.get("ngrams")
    if isinstance(ngrams, int):
        ngrams = tuple(range(1, ngrams + 1))  # Keras: an integer n means every n-gram up to n
    mode = config["output_mode"]
    return [
        Vectorize(
            standardize=config.get("standardize"),
            split=config.get("split"),
            ngrams=tuple(ngrams) if ngrams else None,
            lookup=lookup_index(layer, list(layer.get_vocabulary()), {"oov_token": "[UNK]"}),
            output_mode=mode,
            sequence_length=config.get("output_sequence_length"),
            encode=lookup_encode(layer, config, getattr(layer, "_lookup_layer", None)),
        )
    ]


def _normalization(layer: Any) -> list[Any]:
    config = layer.get_config()
    if config.get("mean") is not None:
        mean, variance = config["mean"], config["variance"]
    else:
        weights = weights_by_name(layer)
        mean, variance = weights["mean"], weights["variance"]
    mean, variance = np.asarray(mean).reshape(-1), np.asarray(variance).reshape(-1)
    if tuple(np.atleast_1d(config.get("axis", -1))) != (-1,) and mean.size > 1:
        raise UnsupportedLayer(f"{layer.name}: axis={config.get('axis')}")
    return [ops.Normalize(mean, variance, bool(config.get("invert")))]


def _dense(layer: Any) -> list[Any]:
    _check_plain(layer)
    weights = weights_by_name(layer)
    return [ops.Dense(weights["kernel"], weights.get("bias"), layer.get_config().get("activation"))]


def _embedding(layer: Any) -> list[Any]:
    _check_plain(layer)
    return [ops.Embed(weights_by_name(layer)["embeddings"])]


def _batch_normalization(layer: Any) -> list[Any]:
    config = layer.get_config()
    if config["axis"] not in (-1, len(layer.input.shape) - 1):
        raise UnsupportedLayer(f"{layer.name}: axis={config['axis']}")
    weights = weights_by_name(layer)
    return [
        ops.BatchNorm(
            weights["moving_mean"],
            weights["moving_variance"],
            weights.get("gamma"),
            weights.get("beta"),
            float(config["epsilon"]),
        )
    ]


def _pooling(layer: Any) -> list[Any]:
    config = layer.get_config()
    if config.get("data_format", "channels_last") != "channels_last":
        raise UnsupportedLayer(f"{layer.name}: data_format={config['data_format']}")
    return [ops.AveragePool1D(bool(config.get("keepdims", False)))]


def periodic_embedding(layer: Any) -> list[Any]:
    """PLR numeric embeddings: weights ``frequencies (n, k)``, ``kernel (n, 2k, d)``, ``bias (n, d)``."""
    weights = weights_by_name(layer)
    return [PeriodicEmbedding(weights["frequencies"], weights["kernel"], weights["bias"])]


def batch_ensemble_dense(layer: Any) -> list[Any]:
    """A TabM shared layer: weights ``r (k, d_in)``, ``kernel (d_in, d_out)``, ``s (k, d_out)``, ``bias (k, d_out)``."""
    weights = weights_by_name(layer)
    config = layer.get_config()
    return [
        BatchEnsembleDense(
            weights["r"],
            weights["kernel"],
            weights["s"],
            weights["bias"],
            config.get("activation"),
            int(config.get("k") or weights["r"].shape[0]),
        )
    ]


def member_heads(layer: Any) -> list[Any]:
    """TabM's per-member softmax heads (``kernel (k, d, c)``, ``bias (k, c)``); the model averages them after."""
    weights = weights_by_name(layer)
    return [MemberDense(weights["kernel"], weights["bias"], "softmax")]


def _unit_normalization(layer: Any) -> list[Any]:
    axis = layer.get_config().get("axis", -1)
    if isinstance(axis, list | tuple):
        if len(axis) != 1:
            raise UnsupportedLayer(f"{layer.name}: axis={axis}")
        axis = axis[0]
    return [ops.UnitNorm(int(axis))]


def _config_op(build: Callable[[dict[str, Any]], Any]) -> OpFactory:
    return lambda layer: [build(layer.get_config())]


LAYER_OPS: dict[str, OpFactory] = {
    # The project's preprocessing layers: their fitted values are their config.
    f"{PROJECT}>ImputeMissing": _config_op(lambda c: ops.Impute(c["fill_value"])),
    f"{PROJECT}>MissingIndicator": _config_op(lambda c: ops.MissingFlag()),
    f"{PROJECT}>ClipValues": _config_op(lambda c: ops.Clip(c["lower"], c["upper"])),
    f"{PROJECT}>QuantileNormal": _config_op(lambda c: QuantileScore(c["knots"], c["scores"])),
    "Normalization": _normalization,
    "StringLookup": _lookup,
    "IntegerLookup": _lookup,
    "TextVectorization": _text_vectorization,
    "Embedding": _embedding,
    "GlobalAveragePooling1D": _pooling,
    "Concatenate": _config_op(lambda c: ops.Concat(int(c["axis"]))),
    "Average": _config_op(lambda c: ops.Average()),
    "Add": _config_op(lambda c: ops.Add()),
    "Dense": _dense,
    "BatchNormalization": _batch_normalization,
    "Dropout": _config_op(lambda c: ops.Identity()),
    "GaussianDropout": _config_op(lambda c: ops.Identity()),
    "GaussianNoise": _config_op(lambda c: ops.Identity()),
    "Identity": _config_op(lambda c: ops.Identity()),
    "Activation": _config_op(lambda c: ops.Apply(c.get("activation"))),
    "Flatten": _config_op(lambda c: ops.Flatten()),
    "RepeatVector": _config_op(lambda c: ops.RepeatRows(int(c["n"]))),
    "UnitNormalization": _unit_normalization,
    # The model families' layers (deep_learning_workflow.models.layers).
    f"{PROJECT}>PeriodicEmbedding": periodic_embedding,
    f"{PROJECT}>EnsembleDense": batch_ensemble_dense,
    f"{PROJECT}>MemberHeads": member_heads,
}


def register_layer(registered_name: str, factory: OpFactory) -> None:
    """Serve a layer kind through the fast path: ``factory(layer)`` returns its op(s), applied as a chain.

    Args:
        registered_name: ``keras.saving.get_registered_name`` of the layer class, e.g.
            ``"deep_learning_workflow>PeriodicEmbedding"``.
        factory: e.g. :func:`periodic_embedding`, :func:`batch_ensemble_dense` or :func:`member_heads`.
    """
    LAYER_OPS[registered_name] = factory


def layer_ops(layer: Any, registered_name: str) -> list[Any]:
    """The NumPy op(s) of one layer, applied as a chain.

    Raises:
        UnsupportedLayer: naming the layer when its kind (or a setting of it) has no NumPy twin.
    """
    factory = LAYER_OPS.get(registered_name)
    if factory is None:
        raise UnsupportedLayer(f"{layer.name}: {registered_name}")
    return factory(layer)
