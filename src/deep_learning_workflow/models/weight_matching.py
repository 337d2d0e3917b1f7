"""Matching a warm-start model's weights to a freshly built model's, layer by layer.

Rows that stand for tokens or categories are matched by the vocabularies, never by index: the embedding row of a
token, and the input row of the first hidden layer for a category, a numeric column or an embedding dimension,
come from the same token, category or column of the source model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .names import column_layer, layer_name, split_layer_name


def _inbound(entry: Mapping[str, Any]) -> list[str]:
    """Names of the layers feeding a layer, from a functional model's config entry."""
    nodes = entry.get("inbound_nodes") or []
    if len(nodes) != 1 or not nodes[0].get("args"):
        return []
    tensors = nodes[0]["args"][0]
    tensors = tensors if isinstance(tensors, list) else [tensors]
    return [
        tensor["config"]["keras_history"][0]
        for tensor in tensors
        if isinstance(tensor, dict) and "keras_history" in tensor.get("config", {})
    ]


def input_names(model: Any, layer: str) -> list[tuple[Any, ...]] | None:
    """What each input column of ``layer`` stands for (a numeric column, a category, an embedding dimension).

    None when the layer's input is not a concatenation of preprocessing outputs (e.g. a deeper hidden layer).
    """
    entries = {entry["name"]: entry for entry in model.get_config()["layers"]}

    def names(producer: str) -> list[tuple[Any, ...]] | None:
        entry = entries.get(producer)
        if entry is None:
            return None
        if entry["class_name"] == "Concatenate":
            parts = [names(name) for name in _inbound(entry)]
            return None if any(p is None for p in parts) else [n for p in parts for n in p]
        if entry["class_name"] == "PeriodicEmbedding":
            inbound = _inbound(entry)
            values = names(inbound[0]) if len(inbound) == 1 else None
            size = entry["config"]["embedding_dim"]
            return (
                None
                if values is None
                else [("plr", *v[1:], d) for v in values for d in range(size)]
            )
        kind, column = split_layer_name(producer) or ("", "")
        if kind in ("flatten", "normalize"):
            vectorize = model.get_layer(layer_name("vectorize", column))
            return [("token", column, token) for token in vectorize.get_vocabulary()]
        if kind in ("impute", "clip", "scale"):
            return [("value", column)]
        if kind == "missing":
            return [("missing", column)]
        if kind == "lookup" and entry["config"].get("output_mode") == "one_hot":
            return [
                ("category", column, token) for token in model.get_layer(producer).get_vocabulary()
            ]
        if kind == "pool":
            dimension = model.get_layer(layer_name("embed", column)).output_dim
            return [("embedding", column, d) for d in range(dimension)]
        return None

    inbound = _inbound(entries.get(layer, {}))
    return names(inbound[0]) if len(inbound) == 1 else None


def vocabulary(model: Any, column: str) -> list[str] | None:
    for kind in ("vectorize", "lookup"):
        layer = column_layer(model, kind, column)
        if layer is not None:
            return [str(token) for token in layer.get_vocabulary()]
    return None


def _shape_note(target: list[np.ndarray], source: list[np.ndarray]) -> str:
    return f"shapes {[list(w.shape) for w in target]} here, {[list(w.shape) for w in source]} in the warm-start model"


def _by_rows(
    target: np.ndarray, source: np.ndarray, target_keys: list[Any], source_keys: list[Any]
) -> tuple[np.ndarray, int]:
    """``target`` with each row whose key the source also has replaced by the source's row of that key."""
    index = {key: row for row, key in reversed(list(enumerate(source_keys)))}
    result = target.copy()
    matched = 0
    for row, key in enumerate(target_keys):
        if key in index:
            result[row] = source[index[key]]
            matched += 1
    return result, matched


def matched_weights(
    name: str, target_model: Any, source_model: Any
) -> tuple[list[np.ndarray] | None, str]:
    """The weights of layer ``name`` taken from the source model, or None and why not."""
    target = [np.asarray(w) for w in target_model.get_layer(name).get_weights()]
    source = [np.asarray(w) for w in source_model.get_layer(name).get_weights()]
    if len(target) != len(source):
        return None, f"{len(target)} weight arrays here, {len(source)} in the warm-start model"
    split = split_layer_name(name)
    column = split[1] if split is not None and split[0] == "embed" else None
    vocabularies = (
        (vocabulary(target_model, column), vocabulary(source_model, column)) if column else None
    )
    if vocabularies and None not in vocabularies:
        if target[0].shape[1] != source[0].shape[1]:
            return None, (
                f"embedding dimension {target[0].shape[1]} here, {source[0].shape[1]} in the warm-start model"
            )
        matrix, matched = _by_rows(target[0], source[0], *vocabularies)
        if not matched:
            return None, "no token or category in common with the warm-start model's vocabulary"
        return [matrix], f"{matched} of {len(vocabularies[0])} rows matched by token"
    keys = (input_names(target_model, name), input_names(source_model, name))
    if name.startswith("hidden_") and None not in keys and keys[0] != keys[1]:
        # The kernel's rows stand for the input columns (numeric columns, one-hot categories, embedding
        # dimensions); with other vocabularies or columns they sit elsewhere, so they are matched by what they are.
        if target[0].shape[1:] != source[0].shape[1:] or [w.shape for w in target[1:]] != [
            w.shape for w in source[1:]
        ]:
            return None, _shape_note(target, source)
        kernel, matched = _by_rows(target[0], source[0], *keys)
        if not matched:
            return None, "no input column in common with the warm-start model"
        return [kernel, *source[1:]], f"{matched} of {len(keys[0])} input rows matched by column"
    if [w.shape for w in target] != [w.shape for w in source]:
        return None, _shape_note(target, source)
    return source, "copied"
