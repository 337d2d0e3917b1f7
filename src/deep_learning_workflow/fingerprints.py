"""Content hashes that version what the workflow evaluates and ships: a table and a trained Keras model."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import pandas as pd


def frame_fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of a table (values and column names, not the index): its data version."""
    digest = hashlib.sha256(json.dumps([str(column) for column in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def model_fingerprint(model: Any) -> str:
    """A sha256 of what makes a Keras model compute what it computes: config, weights and lookup vocabularies.

    Unlike the hash of a saved ``.keras`` file (which embeds the save time), it is the same for the same trained
    model however often it is saved and loaded.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for weights in model.get_weights():
        array = np.ascontiguousarray(weights)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    for layer in model.layers:
        if hasattr(layer, "get_vocabulary"):
            digest.update(layer.name.encode())
            digest.update(json.dumps([str(token) for token in layer.get_vocabulary()]).encode())
    return digest.hexdigest()
