"""The model families behind ``params:modelling.architecture``: each module builds the trainable part of a model.

A builder takes the parameters, the number of numeric columns and of classes, and returns a :class:`Head`:
the layer that embeds the numeric columns (or None), the callable that maps the joined features to the training
output, and the number of members whose probabilities the saved model averages (1: the output is already the
probabilities).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from deep_learning_workflow.models.schema import ModellingParams


class Head(NamedTuple):
    """The trainable layers of one family."""

    numeric_embedding: Any
    """Applied to the (rows, n) scaled numeric values before they join the other features; None: used as they are."""
    stack: Callable[[Any], Any]
    """Joined features -> training output: (rows, classes) probabilities, or (rows, members, classes)."""
    members: int
    """Members whose probabilities the saved model averages; 1 when ``stack`` gives the probabilities."""


def build_head(params: ModellingParams, n_numeric: int, n_classes: int) -> Head:
    """The :class:`Head` of ``params.architecture``."""
    from . import mlp, plr_mlp, tabm

    builders: dict[str, Callable[[ModellingParams, int, int], Head]] = {
        "mlp": mlp.build_head,
        "plr_mlp": plr_mlp.build_head,
        "tabm": tabm.build_head,
    }
    return builders[params.architecture](params, n_numeric, n_classes)
