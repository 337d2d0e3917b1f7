"""``tabm``: k implicit MLPs sharing their weights (TabM, Gorishniy et al. 2025, BatchEnsemble-style).

The joined features are repeated for the k members (``members``, shape (rows, k, f)); each hidden layer is an
``EnsembleDense`` whose kernel the members share while each member scales its input and output and adds its own
bias; each member has its own softmax output layer (``member_probabilities``). Training minimises the mean of the
members' cross-entropies; the saved model outputs the mean of their probabilities (``probabilities``). With
``tabm.numeric_embedding: plr`` the numeric columns first go through the periodic embeddings of :mod:`.plr_mlp`.
"""

from __future__ import annotations

from typing import Any

from deep_learning_workflow.models.schema import ModellingParams

from . import Head, mlp, plr_mlp


def build_head(params: ModellingParams, n_numeric: int, n_classes: int) -> Head:
    """The members' shared layers and their own output layers."""
    import keras

    from deep_learning_workflow.models.layers import EnsembleDense, MemberHeads

    members = params.tabm.members
    stack: list[Any] = [keras.layers.RepeatVector(members, name="members")]
    for index, units in enumerate(params.hidden_units, start=1):
        stack.append(
            EnsembleDense(
                units,
                members,
                activation=None if params.batch_norm else params.activation,
                random_signs=index == 1,
                name=f"hidden_{index}",
            )
        )
        if params.batch_norm:
            stack.append(keras.layers.BatchNormalization(name=f"batch_norm_{index}"))
            stack.append(keras.layers.Activation(params.activation, name=f"activation_{index}"))
        if params.dropout > 0:
            stack.append(keras.layers.Dropout(params.dropout, name=f"dropout_{index}"))
    stack.append(MemberHeads(n_classes, members, name="member_probabilities"))
    embedding = (
        plr_mlp.periodic_embedding(params, n_numeric)
        if params.tabm.numeric_embedding == "plr"
        else None
    )
    return Head(embedding, mlp.chain(stack), members)
