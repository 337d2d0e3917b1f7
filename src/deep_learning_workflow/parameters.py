"""Typed parameters.

Each parameter block in ``conf/<env>/parameters*.yml`` has a schema: a pydantic model (or any type pydantic can
validate) registered under the block's top-level key with :func:`register`. Nodes turn their ``params:`` input into
the typed object with :func:`parse`; :class:`deep_learning_workflow.hooks.ValidateParametersHook` validates every
block a run needs before its first node, so a bad value stops the run in seconds, naming the key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

T = TypeVar("T")

_SCHEMAS: dict[str, Any] = {}


class Parameters(BaseModel):
    """Base of every parameter schema: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def register(key: str):
    """Register the decorated schema (or, called with a type, that type) for the top-level parameter ``key``."""

    def decorator(schema: T) -> T:
        _SCHEMAS[key] = schema
        return schema

    return decorator


def schema_for(name: str) -> Any | None:
    """The schema of a parameter name such as ``splitting`` or, in a namespace, ``tuned.modelling``."""
    return _SCHEMAS.get(name) or _SCHEMAS.get(name.rsplit(".", 1)[-1])


def _describe(error: ValidationError, key: str) -> list[str]:
    lines = []
    for problem in error.errors():
        where = ".".join([key, *(str(part) for part in problem["loc"])])
        shown = repr(problem.get("input"))
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        lines.append(f"  - {where}: {problem['msg']} (got {shown})")
    return lines


def parse(schema: type[T] | Any, value: Any, key: str) -> T:
    """Validate ``value`` against ``schema`` and return the typed object.

    Raises:
        ValueError: naming every invalid key under ``key`` and what was given.
    """
    try:
        return TypeAdapter(schema).validate_python(value)
    except ValidationError as error:
        message = "\n".join(
            [
                f"Invalid parameters under '{key}'; fix them in conf/<env>/parameters*.yml:",
                *_describe(error, key),
            ]
        )
        raise ValueError(message) from None


def validate_parameters(values: Mapping[str, Any]) -> None:
    """Validate several parameter blocks at once; one error lists the problems of all of them.

    Args:
        values: parameter name (without ``params:``) to its value. Names without a schema are skipped.

    Raises:
        ValueError: when any block is invalid.
    """
    problems: list[str] = []
    for name, value in sorted(values.items()):
        schema = schema_for(name)
        if schema is None:
            continue
        try:
            TypeAdapter(schema).validate_python(value)
        except ValidationError as error:
            problems.extend(_describe(error, name))
    if problems:
        raise ValueError(
            "Invalid parameters; fix them in conf/<env>/parameters*.yml before running:\n"
            + "\n".join(problems)
        )
