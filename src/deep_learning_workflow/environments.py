"""Environments of the configuration: what an environment must set when it brings its own table.

``conf/base`` describes the Telco demo. An environment that reads another table (its own ``raw_customers``) is merged
over it, so a key it leaves out would silently keep a Telco value: a column the table does not have, Telco's gate
floor, Telco's costs, Telco's report title. The keys of :data:`TABLE_SPECIFIC_PARAMETERS` and
:data:`TABLE_SPECIFIC_CATALOG` are those; :class:`TableSpecificKeysHook` stops such a run before its first node with
the list of keys to set (``kedro dlw new-table`` writes all of them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from kedro.framework.hooks import hook_impl

# Keys of conf/base's parameters whose values describe the Telco table or the Telco problem. An environment with a
# table of its own must set each of them (null is a value: it removes the Telco one).
TABLE_SPECIFIC_PARAMETERS = (
    "columns.key",
    "columns.target",
    "columns.positive_class",
    "columns.numeric",
    "columns.categorical",
    "columns.text",
    "problem.statement",
    "problem.success",
    "problem.costs",
    "data_acquisition.sources.database.enabled",
    "data_acquisition.dtypes",
    "data_processing.rules",
    "evaluation.threshold.rule",
    "evaluation.release_gate.floors",
    "evaluation.release_gate.ceilings",
    "evaluation.report.title",
    "evaluation.report.limitations",
    "tuning.study_name",
)
# Catalog entries naming Telco files besides the table itself.
TABLE_SPECIFIC_CATALOG = ("scoring_batch", "release_scenarios")
TABLE_ENTRY = "raw_customers"
CONFIG_SUFFIXES = {".yml", ".yaml", ".json"}


def _merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def read_own_config(conf_source: Path, env: str, patterns: Iterable[str]) -> dict[str, Any]:
    """The configuration one environment's own files give for a config type, without base and unresolved.

    Args:
        conf_source: the ``conf`` folder.
        env: the environment's folder name.
        patterns: the config loader's glob patterns of the type (e.g. ``parameters*``).

    Returns:
        The files' top-level keys merged (nested maps merged too); empty when the folder has no such file.
    """
    folder = conf_source / env
    files = sorted(
        {path for pattern in patterns for path in folder.glob(pattern) if path.is_file()}
    )
    merged: dict[str, Any] = {}
    for path in files:
        if path.suffix not in CONFIG_SUFFIXES or path.name.startswith("."):
            continue
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        if isinstance(loaded, Mapping):
            merged = _merge(merged, loaded)
    return merged


def _leaves(value: Any, path: str) -> list[str]:
    if isinstance(value, Mapping) and value:
        return [leaf for key, item in value.items() for leaf in _leaves(item, f"{path}.{key}")]
    return [path]


def _sets(own: Mapping[str, Any], path: str) -> bool:
    """Whether ``own`` sets ``path`` itself or replaces a map above it with a value that is not a map."""
    node: Any = own
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return True
        if part not in node:
            return False
        node = node[part]
    return True


def _lookup(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def reads_own_table(own_catalog: Mapping[str, Any], base_catalog: Mapping[str, Any]) -> bool:
    """Whether an environment's catalog points ``raw_customers`` at another table than the base one."""
    own = own_catalog.get(TABLE_ENTRY)
    return isinstance(own, Mapping) and own.get("filepath") != (
        base_catalog.get(TABLE_ENTRY) or {}
    ).get("filepath")


def unset_table_specific_keys(
    conf_source: Path, env: str, base_env: str, patterns: Mapping[str, list[str]]
) -> list[str]:
    """The table-specific keys an environment that reads its own table leaves at their base values.

    Args:
        conf_source: the ``conf`` folder.
        env: the run's environment.
        base_env: the base environment (``base``).
        patterns: the config loader's ``config_patterns``.

    Returns:
        One line per key to set (empty when the environment is the base, reads the base table or sets them all).
    """
    if env == base_env:
        return []
    own_catalog = read_own_config(conf_source, env, patterns["catalog"])
    base_catalog = read_own_config(conf_source, base_env, patterns["catalog"])
    if not reads_own_table(own_catalog, base_catalog):
        return []
    own = read_own_config(conf_source, env, patterns["parameters"])
    base = read_own_config(conf_source, base_env, patterns["parameters"])
    missing = []
    for key in TABLE_SPECIFIC_PARAMETERS:
        value = _lookup(base, key)
        unset = [leaf for leaf in _leaves(value, key) if not _sets(own, leaf)]
        if unset == [key]:
            missing.append(f"params:{key} (base: {value!r})"[:160])
        elif unset:
            kept = ", ".join(leaf[len(key) + 1 :] for leaf in unset)
            missing.append(f"params:{key} (still from base: {kept})")
    missing += [
        f"catalog entry {name} (base: {(base_catalog.get(name) or {}).get('filepath')})"
        for name in TABLE_SPECIFIC_CATALOG
        if name not in own_catalog
    ]
    return missing


def describe_unset(env: str, missing: list[str]) -> str:
    """The message that stops a run whose environment leaves table-specific keys at Telco's values."""
    return (
        f"Environment '{env}' reads its own table (catalog: {TABLE_ENTRY}) but leaves these keys at the values of "
        f"the Telco demo in conf/base; set each in conf/{env}/ (null removes a value), or write the environment "
        f"with `kedro dlw new-table <file> --target <column> --env {env}`:\n"
        + "\n".join(f"  - {line}" for line in missing)
    )


class TableSpecificKeysHook:
    """Stops a run before its first node when its environment reads its own table but leaves a table-specific key
    (:data:`TABLE_SPECIFIC_PARAMETERS`, :data:`TABLE_SPECIFIC_CATALOG`) at the Telco value of conf/base."""

    def __init__(self) -> None:
        self._loader: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._loader = context.config_loader

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        loader = self._loader
        if loader is None or not hasattr(loader, "config_patterns"):
            return
        env = loader.env or loader.default_run_env
        missing = unset_table_specific_keys(
            Path(loader.conf_source), env, loader.base_env, loader.config_patterns
        )
        if missing:
            raise ValueError(describe_unset(env, missing))
