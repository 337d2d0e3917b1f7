"""``kedro dlw check``: an environment against its table, in seconds, every problem listed at once.

It reads the configuration as ``kedro run --env <env>`` does and loads the table, the scoring batch and the release
scenarios through the catalog, without running any node and without importing TensorFlow.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles, target_labels
from deep_learning_workflow.environments import describe_unset, unset_table_specific_keys
from deep_learning_workflow.parameters import validate_parameters

from .inference import is_text
from .reading import one_column_hint

TABLE = "raw_customers"


def register_all_schemas() -> None:
    """Import every pipeline, so that each parameter block's schema is registered."""
    import deep_learning_workflow.pipelines as pipelines

    for module in pkgutil.iter_modules(pipelines.__path__):
        importlib.import_module(f"{pipelines.__name__}.{module.name}.pipeline")


def load_configuration(project: Path, env: str) -> tuple[Any, dict[str, Any]]:
    """The project's config loader for ``env`` (the settings' merge strategy) and its parameters."""
    from kedro.config import OmegaConfigLoader

    from deep_learning_workflow.settings import CONFIG_LOADER_ARGS

    arguments = {
        key: value for key, value in CONFIG_LOADER_ARGS.items() if key != "default_run_env"
    }
    loader = OmegaConfigLoader(conf_source=str(project / "conf"), env=env, **arguments)
    return loader, loader["parameters"]


def _absolute(entries: Mapping[str, Any], project: Path) -> dict[str, Any]:
    """Catalog entries with relative file paths made relative to the project, as a Kedro session does."""
    absolute = {}
    for name, entry in entries.items():
        if isinstance(entry, Mapping):
            entry = dict(entry)
            for field in ("filepath", "path"):
                value = entry.get(field)
                if isinstance(value, str) and "://" not in value and not Path(value).is_absolute():
                    entry[field] = (project / value).as_posix()
            if isinstance(entry.get("dataset"), Mapping):
                entry["dataset"] = _absolute({"inner": entry["dataset"]}, project)["inner"]
        absolute[name] = entry
    return absolute


def _load(catalog: Any, name: str, problems: list[str]) -> Any:
    try:
        return catalog.load(name)
    except Exception as error:  # noqa: BLE001 - every failure to load is one problem in the list
        while error.__cause__ is not None:
            error = error.__cause__
        message = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
        problems.append(f"catalog entry {name} cannot be loaded: {message}")
        return None


def check_roles(frame: pd.DataFrame, roles: ColumnRoles) -> list[str]:
    """Problems of params:columns against the table: missing columns, key, target classes, mistyped roles."""
    problems = []
    hint = one_column_hint(frame)
    if hint:
        problems.append(f"{TABLE}: {hint}")
    named = {"key": [roles.key] if roles.key else [], "target": [roles.target]}
    named |= {role: getattr(roles, role) or [] for role in ("numeric", "categorical", "text")}
    for role, columns in named.items():
        for column in columns:
            if column not in frame:
                problems.append(
                    f"params:columns.{role} names '{column}', which {TABLE} does not have"
                )
    if roles.key in frame:
        key = frame[roles.key]
        if key.isna().any() or not key.is_unique:
            problems.append(
                f"params:columns.key '{roles.key}' has {int(key.isna().sum())} missing and "
                f"{int(key.duplicated().sum())} repeated values; choose a unique column or set it to null"
            )
    if roles.target in frame:
        classes = sorted(target_labels(frame[roles.target]).dropna().unique().tolist())
        if len(classes) < 2:
            problems.append(
                f"params:columns.target '{roles.target}' has {len(classes)} class(es) {classes}; a classifier "
                "needs two or more"
            )
        if roles.positive_class is not None and roles.positive_class not in classes:
            problems.append(
                f"params:columns.positive_class '{roles.positive_class}' does not occur in '{roles.target}', "
                f"whose classes are {classes}"
            )
        if roles.positive_class is None and len(classes) == 2:
            problems.append(
                f"params:columns.positive_class is null but '{roles.target}' has two classes {classes}; name the "
                "one whose probability is thresholded"
            )
    for column in roles.numeric or []:
        if column in frame and not pd.api.types.is_numeric_dtype(frame[column]):
            kind = "text" if is_text(frame[column]) else "strings"
            example = frame[column].dropna().astype(str).head(1).tolist()
            problems.append(
                f"params:columns.numeric names '{column}', whose values are {kind} (e.g. {example}); move it to "
                "columns.text or columns.categorical"
            )
    for column in roles.text:
        if column in frame and pd.api.types.is_numeric_dtype(frame[column]):
            problems.append(
                f"params:columns.text names '{column}', whose values are numbers; move it to columns.numeric"
            )
    return problems


def check_scoring_batch(batch: pd.DataFrame, roles: ColumnRoles) -> list[str]:
    """The scoring batch must hold every feature column."""
    missing = [column for column in roles.features if column not in batch]
    return (
        [f"scoring_batch has no column {missing}; it needs every feature column"] if missing else []
    )


def check_scenarios(scenarios: Any, roles: ColumnRoles) -> list[str]:
    """Release scenarios must parse and name feature columns only."""
    from deep_learning_workflow.parameters import parse
    from deep_learning_workflow.pipelines.evaluation.schema import ReleaseScenarios

    try:
        typed = parse(ReleaseScenarios, scenarios, "release_scenarios")
    except ValueError as error:
        return [str(error).replace("\n", " ")]
    features = set(roles.features)
    named = set(typed.defaults)
    for scenario in typed.scenarios:
        named |= set(scenario.record) | {c for step in scenario.steps for c in step}
    unknown = sorted(map(str, named - features))
    return [f"release_scenarios name columns that are no features: {unknown}"] if unknown else []


def short_splits_of(table: pd.DataFrame, target: str, splitting: Mapping[str, Any]) -> list[str]:
    """The splits of ``table`` that would hold fewer than ``params:splitting.min_rows_per_class`` rows of a class,
    one line each, whatever ``on_small_table`` says (empty when the parameters are invalid: reported elsewhere)."""
    from deep_learning_workflow.pipelines.splitting.class_sizes import (
        allocate_rows,
        label_counts,
        short_splits,
    )
    from deep_learning_workflow.pipelines.splitting.schema import SplittingParameters

    try:
        params = SplittingParameters.model_validate(dict(splitting))
    except ValueError:
        return []
    if target not in table:
        return []
    counts = label_counts(table[target])
    return [
        f"params:splitting.min_rows_per_class is {params.min_rows_per_class}, but class '{label}' would have "
        f"{rows} rows in {split} (of {counts[label]} in {TABLE}); add rows, merge rare classes or lower it"
        for label, split, rows in short_splits(
            counts, partial(allocate_rows, params=params), params.min_rows_per_class
        )
    ]


def check_split_sizes_of(
    table: pd.DataFrame, roles: ColumnRoles, splitting: Mapping[str, Any]
) -> list[str]:
    """The short splits of :func:`short_splits_of` when ``on_small_table`` is ``stop`` (the run would stop on them
    before its first node)."""
    if (splitting or {}).get("on_small_table", "stop") != "stop":
        return []
    return short_splits_of(table, roles.target, splitting)


def check_environment(project: Path, env: str) -> list[str]:
    """Every problem of environment ``env`` against its table (empty: ready to run).

    Args:
        project: the project folder.
        env: the environment's name (``conf/<env>/``).

    Returns:
        One line per problem.
    """
    from kedro.io import DataCatalog

    if not (project / "conf" / env).is_dir():
        return [
            f"conf/{env}/ does not exist; write it with `kedro dlw new-table <file> --target <column> --env {env}`"
        ]
    loader, parameters = load_configuration(project, env)
    problems = []
    unset = unset_table_specific_keys(
        project / "conf", env, loader.base_env, loader.config_patterns
    )
    if unset:
        problems.append(describe_unset(env, unset))
    register_all_schemas()
    try:
        validate_parameters(parameters, complete=True)
    except ValueError as error:
        problems.append(str(error))
    try:
        roles = ColumnRoles.model_validate(parameters["columns"])
    except ValueError:
        return problems
    catalog = DataCatalog.from_config(
        _absolute(loader["catalog"], project), loader.get("credentials") or {}
    )
    checks: Mapping[str, Callable[[Any, ColumnRoles], list[str]]] = {
        TABLE: check_roles,
        "scoring_batch": check_scoring_batch,
        "release_scenarios": check_scenarios,
    }
    loaded = {name: _load(catalog, name, problems) for name in checks}
    for name, check in checks.items():
        if loaded[name] is not None:
            problems.extend(check(loaded[name], roles))
    rules = (parameters.get("data_processing") or {}).get("rules") or []
    table = loaded[TABLE]
    if table is not None:
        problems.extend(
            f"params:data_processing.rules names '{rule.get('column')}', which {TABLE} does not have"
            for rule in rules
            if rule.get("column") not in table
        )
        problems.extend(check_split_sizes_of(table, roles, parameters.get("splitting") or {}))
    return problems
