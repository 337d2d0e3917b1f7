"""``plr_mlp``: periodic embeddings of the numeric columns (Gorishniy et al. 2022), then the MLP.

Each scaled numeric value x of column j becomes ``relu([cos(2 pi c_j x), sin(2 pi c_j x)] @ W_j + b_j)``, with k
frequencies ``c_j`` learned from an N(0, sigma) start (``params:modelling.plr``); the embeddings join the
categorical and text encodings before the dense layers of :mod:`.mlp`.
"""

from __future__ import annotations

from typing import Any

from deep_learning_workflow.models.schema import ModellingParams

from . import Head, mlp

LAYER = "plr_numeric"


def periodic_embedding(params: ModellingParams, n_numeric: int) -> Any:
    """The ``PeriodicEmbedding`` layer of ``params:modelling.plr`` for ``n_numeric`` columns."""
    from deep_learning_workflow.models.layers import PeriodicEmbedding

    settings = params.plr
    return PeriodicEmbedding(
        n_numeric,
        settings.frequencies,
        settings.embedding_dim,
        settings.sigma,
        settings.lite,
        name=LAYER,
    )


def build_head(params: ModellingParams, n_numeric: int, n_classes: int) -> Head:
    """Periodic embeddings of the numeric columns, then the MLP."""
    return Head(
        periodic_embedding(params, n_numeric), mlp.chain(mlp.dense_stack(params, n_classes)), 1
    )
