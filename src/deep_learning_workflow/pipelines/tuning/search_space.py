"""The search space: checking it against ``params:modelling``, drawing a trial's values, merging them in."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from deep_learning_workflow.models.schema import (
    ModellingParams,
    family_of,
    key_used,
    without_unused_sections,
)
from deep_learning_workflow.parameters import parse

from .schema import Choice, FloatRange, IntRange, TuningParams


def merge_overrides(modelling: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params:modelling`` with ``overrides`` set; dotted keys (``categorical.encoding``) reach inside.

    The settings block of a family the result does not choose (``plr``, ``tabm``) is left out.
    """
    merged = copy.deepcopy(dict(modelling))
    for path, value in overrides.items():
        parts = path.split(".")
        node = merged
        for part in parts[:-1]:
            node[part] = dict(node.get(part) or {})
            node = node[part]
        node[parts[-1]] = value
    return without_unused_sections(merged)


def check_search_space(modelling: Mapping[str, Any], tuning: TuningParams) -> None:
    """Check that every bound and choice of the search space is a valid value of ``params:modelling``.

    Raises:
        ValueError: naming ``tuning.search_space.<key>`` and the value ``params:modelling`` rejects.
    """
    for name, dimension in tuning.search_space.items():
        if isinstance(dimension, Choice):
            values = list(dimension.choices)
        else:
            values = [dimension.low, dimension.high]
        for value in values:
            try:
                # A key of another family is checked with that family chosen.
                overrides = {**family_of(name, modelling), name: value}
                parse(ModellingParams, merge_overrides(modelling, overrides), "modelling")
            except ValueError as error:
                raise ValueError(
                    f"params:tuning.search_space.{name} allows {value!r}, which params:modelling does not "
                    f"accept; narrow the range or the choices.\n{error}"
                ) from None


def suggest(
    trial: Any, tuning: TuningParams, modelling: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The trial's hyperparameters drawn from the search space.

    The family keys are drawn first; a key of a family the trial does not choose (``plr.*`` for an ``mlp``) is not
    drawn at all, so the sampler learns nothing from a value that played no part.
    """
    values: dict[str, Any] = {}
    first = ("architecture", "tabm.numeric_embedding")
    ordered = sorted(tuning.search_space.items(), key=lambda item: item[0] not in first)
    for name, dimension in ordered:
        if not key_used(name, merge_overrides(modelling or {}, values)):
            continue
        if isinstance(dimension, FloatRange):
            values[name] = trial.suggest_float(
                name, dimension.low, dimension.high, log=dimension.log, step=dimension.step
            )
        elif isinstance(dimension, IntRange):
            values[name] = trial.suggest_int(
                name, dimension.low, dimension.high, step=dimension.step, log=dimension.log
            )
        else:
            values[name] = trial.suggest_categorical(name, list(dimension.choices))
    return values
