"""Typed parameters.

Each parameter block in ``conf/<env>/parameters*.yml`` has a schema: a pydantic model (or any type pydantic can
validate) registered under the block's top-level key with :func:`register`. Nodes turn their ``params:`` input into
the typed object with :func:`parse`; :class:`deep_learning_workflow.hooks.ValidateParametersHook` validates every
block a run needs before its first node, so a bad value stops the run in seconds, naming the key.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

T = TypeVar("T")

_SCHEMAS: dict[str, Any] = {}
_CHECKS: list[tuple[tuple[str, ...], Callable[..., str | None]]] = []


class Parameters(BaseModel):
    """Base of every parameter schema: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _leaves(annotation: Any) -> set[Any]:
    """The plain types a field annotation accepts at its top level (through unions, Optional and Annotated)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, typing.Annotated):
        arguments = typing.get_args(annotation)
        if origin is typing.Annotated:
            arguments = arguments[:1]
        return set().union(*(_leaves(argument) for argument in arguments))
    if origin is typing.Literal:
        return {type(argument) for argument in typing.get_args(annotation)}
    return {annotation}


def register(key: str):
    """Register the decorated schema (or, called with a type, that type) for the top-level parameter ``key``."""

    def decorator(schema: T) -> T:
        _SCHEMAS[key] = schema
        return schema

    return decorator


def register_check(*keys: str):
    """Register the decorated function as a check of several parameter blocks together.

    A setting in one block may need a value in another (a threshold rule that needs the costs of
    ``params:problem``). The check runs in :func:`validate_parameters` when the run takes every block of ``keys``
    and each of them is valid on its own; it receives their typed values in the order of ``keys`` and returns a
    message naming the keys and what to do, or None when they agree.
    """

    def decorator(check: Callable[..., str | None]) -> Callable[..., str | None]:
        _CHECKS.append((keys, check))
        return check

    return decorator


def schema_for(name: str) -> Any | None:
    """The schema of a parameter name such as ``splitting`` or, in a namespace, ``tuned.modelling``."""
    return _SCHEMAS.get(name) or _SCHEMAS.get(name.rsplit(".", 1)[-1])


def _booleans_for_numbers(annotation: Any, value: Any, key: str) -> list[str]:
    """Problems for the booleans ``value`` gives where ``annotation`` wants a number.

    YAML reads yes, no, on and off as booleans, and pydantic takes True for the number 1: ``epochs: yes`` would
    train for one epoch.
    """
    leaves = _leaves(annotation)
    if isinstance(value, bool):
        if leaves & {int, float} and not leaves & {bool, Any}:
            return [
                f"  - {key}: Input should be a number, not a boolean (YAML reads yes, no, on and off as "
                f"booleans) (got {value!r})"
            ]
        return []
    models = [leaf for leaf in leaves if isinstance(leaf, type) and issubclass(leaf, BaseModel)]
    if len(models) != 1 or not isinstance(value, Mapping):
        return []
    problems = []
    for name, field in models[0].model_fields.items():
        if name in value:
            problems.extend(_booleans_for_numbers(field.annotation, value[name], f"{key}.{name}"))
    return problems


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
    problems = _booleans_for_numbers(schema, value, key)
    try:
        typed = TypeAdapter(schema).validate_python(value)
    except ValidationError as error:
        problems.extend(_describe(error, key))
    if problems:
        message = "\n".join(
            [
                f"Invalid parameters under '{key}'; fix them in conf/<env>/parameters*.yml:",
                *problems,
            ]
        )
        raise ValueError(message)
    return typed


def _left_out(model: BaseModel, key: str) -> list[str]:
    """Problems for the keys ``model`` declares with a default other than null that its input did not give."""
    problems = []
    for name, field in type(model).model_fields.items():
        where = f"{key}.{name}"
        if name in model.model_fields_set:
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                problems.extend(_left_out(value, where))
            continue
        default = field.get_default(call_default_factory=True)
        if default is not None:
            shown = repr(default.model_dump() if isinstance(default, BaseModel) else default)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            problems.append(
                f"  - {where}: missing (the configuration gives every key; the schema's default would be {shown})"
            )
    return problems


def validate_parameters(values: Mapping[str, Any], *, complete: bool = False) -> None:
    """Validate several parameter blocks at once; one error lists the problems of all of them.

    Args:
        values: parameter name (without ``params:``) to its value. Names without a schema are skipped.
        complete: also require every key a schema declares with a default other than null (``kedro run`` does,
            through :class:`~deep_learning_workflow.hooks.ValidateParametersHook`): the configuration writes each
            one out, so a key deleted from it stops the run rather than silently taking the default.

    Raises:
        ValueError: when any block is invalid.
    """
    problems: list[str] = []
    typed: dict[str, Any] = {}
    for name, value in sorted(values.items()):
        schema = schema_for(name)
        if schema is None:
            continue
        booleans = _booleans_for_numbers(schema, value, name)
        problems.extend(booleans)
        try:
            checked = TypeAdapter(schema).validate_python(value)
        except ValidationError as error:
            problems.extend(_describe(error, name))
            continue
        if not booleans:
            typed[name] = checked
    if complete:
        for name, value in sorted(typed.items()):
            if isinstance(value, BaseModel):
                problems.extend(_left_out(value, name))
    for keys, check in _CHECKS:
        if all(key in typed for key in keys):
            message = check(*(typed[key] for key in keys))
            if message:
                problems.append(f"  - {message}")
    if problems:
        raise ValueError(
            "Invalid parameters; fix them in conf/<env>/parameters*.yml before running:\n"
            + "\n".join(problems)
        )
