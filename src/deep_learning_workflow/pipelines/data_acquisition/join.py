"""The join of every enabled source onto the public file by the key."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse

from .common import ANNOTATIONS_DATASET, BASE_DATASET, JOINED_SOURCES, content_sha256, settings_of
from .database import check_database_rows
from .file import check_base_table

logger = logging.getLogger(__name__)


def _source_summary(dataset: str, frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "rows": len(frame),
        "columns": [str(column) for column in frame.columns],
        "content_sha256": content_sha256(frame),
    }


def _check_joinable(
    base: pd.DataFrame, source: pd.DataFrame, name: str, dataset: str, key: str
) -> None:
    if key not in source:
        raise ValueError(
            f"Source '{name}' ({dataset}) has no key column '{key}' (params:columns.key); it has "
            f"{list(source.columns)}."
        )
    duplicated = source[key].duplicated(keep=False)
    if duplicated.any():
        examples = sorted(map(str, source.loc[duplicated, key].unique()))[:5]
        raise ValueError(
            f"Source '{name}' ({dataset}) has {int(duplicated.sum())} rows sharing a key '{key}', e.g. "
            f"{examples}; a source must have at most one row per key."
        )
    if source[key].dtype != base[key].dtype:
        raise ValueError(
            f"Source '{name}' ({dataset}): key '{key}' has dtype {source[key].dtype} but the base table "
            f"({BASE_DATASET}) has {base[key].dtype}; make them agree (e.g. the source's dtypes parameter)."
        )


def join_sources(
    customers: pd.DataFrame,
    billing: pd.DataFrame,
    api_records: pd.DataFrame,
    web_records: pd.DataFrame,
    crowd_labels: pd.DataFrame,
    parameters: dict[str, Any],
    columns: dict[str, Any],
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Left-join the enabled sources onto the public file by the key.

    Joined sources add columns: a column already in the table is an error. The crowd labels instead provide the
    target: for every base row whose key has an (unflagged) aggregated label, that label replaces the target;
    other rows keep the base table's target (a missing one when the base table has no target column).

    Args:
        customers: ``raw_customers``, the base table: every row of it is kept, in its order.
        billing: ``raw_billing`` (the database).
        api_records: records of the web API (no columns when ``api_source`` has no URL).
        web_records: records of the web pages (no columns when ``web_source`` has no URL).
        crowd_labels: aggregated crowd labels (key, target).
        parameters: ``params:data_acquisition`` (``sources.<name>.enabled`` for the database and crowd labels).
        columns: ``params:columns`` (key and target).

    Returns:
        The joined table (columns in the order of ``data_acquisition.dtypes``, others after them) and a summary
        per source: rows, columns, content hash, how many base rows it matched.

    Raises:
        ValueError: naming the source whose key column is missing, repeated or of another dtype, or which brings
            a column the table already has.
    """
    settings = settings_of(parameters)
    roles = parse(ColumnRoles, columns, "columns")
    key = roles.key
    # The web sources are on when their catalog entry names a URL; an off one loads a table without columns.
    enabled = {
        "database": settings.sources.database.enabled,
        "api": len(api_records.columns) > 0,
        "web": len(web_records.columns) > 0,
        "crowd": settings.sources.crowd.enabled,
    }
    _check_inputs(customers, billing, key, enabled)
    frames = {"database": billing, "api": api_records, "web": web_records}
    summary: dict[str, Any] = {"base": _source_summary(BASE_DATASET, customers), "sources": {}}
    table = customers
    for name, dataset in JOINED_SOURCES.items():
        if enabled[name]:
            table, summary["sources"][name] = _join_source(
                table, customers, frames[name], name, str(key)
            )
        else:
            summary["sources"][name] = {"dataset": dataset, "enabled": False}
    if enabled["crowd"]:
        table, summary["sources"]["crowd"] = _apply_crowd_labels(table, crowd_labels, roles)
    else:
        summary["sources"]["crowd"] = {"dataset": ANNOTATIONS_DATASET, "enabled": False}
    table = _in_dtypes_order(table, settings.dtypes or {})
    summary["joined"] = {"rows": len(table), "columns": len(table.columns)}
    return table, summary


def _in_dtypes_order(table: pd.DataFrame, order: dict[str, Any]) -> pd.DataFrame:
    """The columns named in ``data_acquisition.dtypes`` first, in that order, then the others."""
    ordered = [column for column in order if column in table]
    return table[ordered + [column for column in table.columns if column not in order]]


def _check_inputs(
    customers: pd.DataFrame, billing: pd.DataFrame, key: str | None, enabled: dict[str, bool]
) -> None:
    """The base table and the database rows are valid, and the key exists when a source is joined."""
    check_base_table(customers)
    if enabled["database"]:
        check_database_rows(billing)
    if key is None and any(enabled.values()):
        raise ValueError(
            "params:columns.key is null, so no source can be joined; set it or disable the sources."
        )
    if key is not None and key not in customers:
        raise ValueError(
            f"Dataset '{BASE_DATASET}' has no key column '{key}' (params:columns.key); it has "
            f"{list(customers.columns)}."
        )


def _join_source(
    table: pd.DataFrame, customers: pd.DataFrame, source: pd.DataFrame, name: str, key: str
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Left-join one source's columns onto the table; its summary."""
    dataset = JOINED_SOURCES[name]
    _check_joinable(table, source, name, dataset, key)
    clashes = [column for column in source.columns if column != key and column in table]
    if clashes:
        raise ValueError(
            f"Source '{name}' ({dataset}) brings column(s) {clashes} the table already has; drop or rename "
            "them in that source."
        )
    matched = int(table[key].isin(source[key]).sum())
    if matched < len(table):
        logger.warning(
            "Source '%s' matched %d of %d base rows by '%s'.", name, matched, len(table), key
        )
    summary = {
        "enabled": True,
        **_source_summary(dataset, source),
        "matched_base_rows": matched,
        "unmatched_source_rows": int((~source[key].isin(customers[key])).sum()),
    }
    return table.merge(source, on=key, how="left", sort=False), summary


def _apply_crowd_labels(
    table: pd.DataFrame, crowd_labels: pd.DataFrame, roles: ColumnRoles
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Replace the target of every row with an aggregated crowd label; its summary."""
    key = str(roles.key)
    _check_joinable(table, crowd_labels, "crowd", ANNOTATIONS_DATASET, key)
    label = table[key].map(crowd_labels.set_index(key)[roles.target])
    covered = label.notna()
    base_target = table[roles.target] if roles.target in table else None
    replaced = int(
        (covered & (base_target.ne(label) if base_target is not None else covered)).sum()
    )
    table = table.assign(
        **{roles.target: label if base_target is None else label.where(covered, base_target)}
    )
    summary = {
        "enabled": True,
        "dataset": ANNOTATIONS_DATASET,
        "rows": len(crowd_labels),
        "matched_base_rows": int(covered.sum()),
        "changed_targets": replaced,
    }
    return table, summary
