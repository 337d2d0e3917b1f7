"""Nodes of the data_acquisition pipeline: read every source, join them on the key, validate, de-identify.

The public file (``raw_customers``) is the base table. Each enabled source is left-joined onto it by
``params:columns.key``: the database (``raw_billing``), the web API, the web pages and the crowd labels. The
joined table is validated against ``data_acquisition.dtypes`` and ``params:columns`` (every violation in one
error), then the sensitive columns are dropped or hashed, and only then is ``acquired_table`` written.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import numpy as np
import pandas as pd
import pandera.pandas as pa
from bs4 import BeautifulSoup, Tag
from pandera.errors import SchemaErrors

from deep_learning_workflow.columns import ColumnRoles
from deep_learning_workflow.parameters import parse

from .http_client import HttpClient, disabled_provenance, redact_url
from .parameters import AcquisitionParameters, ApiSource, WebSource

logger = logging.getLogger(__name__)

KEY = "data_acquisition"
API = f"{KEY}.sources.api"
WEB = f"{KEY}.sources.web"
# The sources joined as columns: source name (data_acquisition.sources.<name>) -> dataset name.
JOINED_SOURCES = {"database": "raw_billing", "api": "api_records", "web": "web_records"}
BASE_DATASET = "raw_customers"
ANNOTATIONS_DATASET = "raw_annotations"


def _settings(parameters: Mapping[str, Any]) -> AcquisitionParameters:
    return parse(AcquisitionParameters, parameters, KEY)


def _content_sha256(frame: pd.DataFrame) -> str:
    """A digest of a table's columns and values (not of a file's bytes)."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    if len(frame.columns):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _cast(frame: pd.DataFrame, dtypes: Mapping[str, str], where: str, key: str) -> pd.DataFrame:
    missing = [column for column in dtypes if column not in frame]
    if missing:
        raise ValueError(
            f"{where} has no column {missing} named in {key}.dtypes; it has {list(frame.columns)}."
        )
    try:
        return frame.astype(dict(dtypes))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: cannot cast to {key}.dtypes {dict(dtypes)}: {error}") from None


# --- web API -------------------------------------------------------------------------------------------------


def _decode_json(response: Any) -> Any:
    try:
        return json.loads(response.content)
    except ValueError as error:
        start = response.content[:60].decode("utf-8", "replace")
        raise ValueError(
            f"{API}: {redact_url(response.url)} returned malformed JSON ({error}); the body starts with "
            f"{start!r}. Check that the URL serves JSON."
        ) from None


def _at_path(body: Any, path: str) -> Any:
    value = body
    for part in filter(None, path.split(".")):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _page_records(body: Any, api: ApiSource, url: str) -> list[dict[str, Any]]:
    records = _at_path(body, api.records_path)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        shape = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise ValueError(
            f"{API}: {redact_url(url)} has no list of JSON objects at records_path '{api.records_path}' "
            f"(the body is {shape}). Set {API}.records_path to where the records are."
        )
    return records


def _api_records(client: HttpClient, api: ApiSource) -> Iterator[dict[str, Any]]:
    paging = api.paging
    url = str(api.url)
    if paging.style == "none":
        response = client.get_ok(url, params=api.query)
        yield from _page_records(_decode_json(response), api, response.url)
        return
    if paging.style == "page":
        for index in range(paging.max_pages):
            query = {**api.query, paging.page_param: paging.first_page + index}
            if paging.size_param:
                query[paging.size_param] = paging.page_size
            response = client.get_ok(url, params=query)
            records = _page_records(_decode_json(response), api, response.url)
            if not records:
                return
            yield from records
    else:
        params: Mapping[str, Any] | None = api.query
        seen: set[str] = set()
        for _ in range(paging.max_pages):
            response = client.get_ok(url, params=params)
            if response.url in seen:
                raise ValueError(f"{API}: the next links loop back to {redact_url(response.url)}.")
            seen.add(response.url)
            body = _decode_json(response)
            yield from _page_records(body, api, response.url)
            link = _at_path(body, paging.next_link_path)
            if not link:
                return
            url, params = urljoin(response.url, str(link)), None
    raise ValueError(
        f"{API}: still more pages after {paging.max_pages}; raise {API}.paging.max_pages to read them all."
    )


def fetch_api_records(parameters: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read every page of the JSON web API into a table.

    Args:
        parameters: ``params:data_acquisition``; the source's settings are ``sources.api`` and ``http``.

    Returns:
        The records (nested fields flattened to ``a.b`` columns, renamed, selected and cast as configured) and
        the provenance record; an empty table and a provenance record saying so when the source is disabled.

    Raises:
        HttpSourceError: when the server cannot be reached or keeps failing after the retries.
        ValueError: on malformed JSON, records not where ``records_path`` says, or missing columns.
    """
    settings = _settings(parameters)
    api = settings.sources.api
    if not api.enabled:
        return pd.DataFrame(), disabled_provenance(API)
    with HttpClient(settings.http, source=API) as client:
        records = list(_api_records(client, api))
        where = f"{API} ({redact_url(str(api.url))})"
        if not records:
            raise ValueError(f"{where} returned no records; check its url, query and records_path.")
        frame = pd.json_normalize(records).rename(columns=api.rename)
        if api.columns is not None:
            missing = [column for column in api.columns if column not in frame]
            if missing:
                raise ValueError(
                    f"{where}: the records have no field {missing} listed in {API}.columns; they have "
                    f"{list(frame.columns)}. Fix {API}.columns or {API}.rename."
                )
            frame = frame[api.columns]
        frame = _cast(frame, api.dtypes, where, API)
        return frame, client.provenance(rows=len(frame))


# --- web pages -----------------------------------------------------------------------------------------------


def _layout_changed(url: str, what: str, selector: str) -> ValueError:
    return ValueError(
        f"{WEB}: page {redact_url(url)} {what} (selector '{selector}'). The page layout may have changed: check "
        f"the page and update {WEB}."
    )


def _cell_text(element: Tag | None) -> str | None:
    if element is None:
        return None
    text = element.get_text(" ", strip=True)
    return text or None


def _table_rows(soup: BeautifulSoup, web: WebSource, url: str) -> list[dict[str, Any]]:
    selector = str(web.table_selector)
    table = soup.select_one(selector)
    if table is None:
        raise _layout_changed(url, "has no element matching table_selector", selector)
    rows = table.find_all("tr")
    header_row = next((row for row in rows if row.find("th")), None)
    if header_row is None:
        raise _layout_changed(url, "has a table without a header row (<th> cells)", selector)
    header = [_cell_text(cell) or "" for cell in header_row.find_all(["th", "td"])]
    records = []
    for row in rows:
        cells = row.find_all("td")
        if row is header_row or not cells:
            continue
        if len(cells) != len(header):
            raise _layout_changed(
                url,
                f"has a row of {len(cells)} cells under a header of {len(header)} columns",
                selector,
            )
        records.append(dict(zip(header, map(_cell_text, cells), strict=True)))
    if not records:
        raise _layout_changed(url, "has a table without data rows", selector)
    return records


def _item_rows(soup: BeautifulSoup, web: WebSource, url: str) -> list[dict[str, Any]]:
    selector = str(web.item_selector)
    items = soup.select(selector)
    if not items:
        raise _layout_changed(url, "has no element matching item_selector", selector)
    records = [
        {column: _cell_text(item.select_one(field)) for column, field in web.fields.items()}
        for item in items
    ]
    for column, field in web.fields.items():
        if all(record[column] is None for record in records):
            raise _layout_changed(url, f"has no value for field '{column}' in any item", field)
    return records


def _page_frame(soup: BeautifulSoup, web: WebSource, url: str) -> pd.DataFrame:
    records = _table_rows(soup, web, url) if web.table_selector else _item_rows(soup, web, url)
    frame = pd.DataFrame.from_records(records).rename(columns=web.rename)
    missing = [column for column in web.required_columns if column not in frame]
    if missing:
        raise _layout_changed(
            url,
            f"lacks required column(s) {missing}; it has {list(frame.columns)}",
            str(web.table_selector or web.item_selector),
        )
    return frame


def scrape_web_pages(parameters: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read records from HTML pages, honouring robots.txt and the rate limit.

    Each URL of ``sources.web.urls`` is read, then the pages its ``next_selector`` link leads to, up to
    ``max_pages`` in all. Records come from the rows of the table at ``table_selector`` (header cells name the
    columns) or from the items at ``item_selector`` (one column per entry of ``fields``).

    Args:
        parameters: ``params:data_acquisition``; the source's settings are ``sources.web`` and ``http``.

    Returns:
        The records of all pages (text, cast by ``sources.web.dtypes``) and the provenance record; an empty
        table and a provenance record saying so when the source is disabled.

    Raises:
        PermissionError: when robots.txt disallows a page.
        HttpSourceError: when a server cannot be reached, keeps failing or answers 4xx.
        ValueError: when a page's layout does not match the selectors (naming the URL and the selector).
    """
    settings = _settings(parameters)
    web = settings.sources.web
    if not web.enabled:
        return pd.DataFrame(), disabled_provenance(WEB)
    frames = []
    with HttpClient(settings.http, source=WEB) as client:
        queue, seen = list(web.urls), set()
        while queue:
            url = queue.pop(0)
            if url in seen:
                continue
            if len(seen) == web.max_pages:
                raise ValueError(
                    f"{WEB}: more than {web.max_pages} pages; raise {WEB}.max_pages to read them all."
                )
            seen.add(url)
            client.check_robots(url)
            response = client.get_ok(url)
            soup = BeautifulSoup(response.text, "html.parser")
            frames.append(_page_frame(soup, web, url))
            link = soup.select_one(web.next_selector) if web.next_selector else None
            if link is not None and link.get("href"):
                queue.insert(0, urljoin(response.url, str(link["href"])))
        frame = pd.concat(frames, ignore_index=True)
        frame = _cast(frame, web.dtypes, WEB, WEB)
        return frame, client.provenance(rows=len(frame))


# --- crowd labels --------------------------------------------------------------------------------------------


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa of an items x categories matrix of label counts.

    With a varying number of annotators per item, the observed agreement is the mean of the per-item agreements
    of the items with at least two labels (the usual generalisation); with equal numbers it is Fleiss' formula.

    Returns:
        Kappa, or NaN when it is undefined (no item with two labels, or every label the same category).
    """
    counts = np.asarray(counts, dtype=float)
    per_item = counts.sum(axis=1)
    rated = per_item >= 2
    if not rated.any():
        return float("nan")
    counts, per_item = counts[rated], per_item[rated]
    observed = ((counts**2).sum(axis=1) - per_item) / (per_item * (per_item - 1))
    shares = counts.sum(axis=0) / counts.sum()
    expected = float((shares**2).sum())
    if expected >= 1.0:
        return float("nan")
    return float((observed.mean() - expected) / (1.0 - expected))


def _json_number(value: float) -> float | None:
    return None if np.isnan(value) else round(float(value), 6)


def aggregate_annotations(
    annotations: pd.DataFrame, parameters: dict[str, Any], columns: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Aggregate several annotators' labels per item into one label and measure their agreement.

    The label of an item is the majority vote; ties go to the label that is more frequent over all annotations,
    then to the first in alphabetical order. Agreement of an item is the share of its pairs of annotators that
    agree (Fleiss' per-item agreement). Items with agreement below ``min_agreement`` or with fewer than
    ``min_annotators`` labels are flagged and get no label.

    Args:
        annotations: ``raw_annotations``: one row per (item, annotator) with the label.
        parameters: ``params:data_acquisition`` (``sources.crowd``).
        columns: ``params:columns``: the item column defaults to the key, labels fill the target.

    Returns:
        The labels of the unflagged items (columns: key, target) and the annotation report (Fleiss' kappa,
        counts, flagged item keys); an empty table and a report saying so when the source is disabled.

    Raises:
        ValueError: when a column is missing or an annotator labelled the same item twice.
    """
    crowd = _settings(parameters).sources.crowd
    roles = parse(ColumnRoles, columns, "columns")
    if not crowd.enabled:
        return pd.DataFrame(), {"enabled": False}
    item = crowd.item_column or roles.key
    if item is None:
        raise ValueError(
            f"{KEY}.sources.crowd.item_column is needed when params:columns.key is null."
        )
    needed = [item, crowd.annotator_column, crowd.label_column]
    missing = [column for column in needed if column not in annotations]
    if missing:
        raise ValueError(
            f"Dataset '{ANNOTATIONS_DATASET}' has no column {missing}; it has {list(annotations.columns)}. "
            f"Fix {KEY}.sources.crowd (item_column, annotator_column, label_column)."
        )
    votes = annotations[needed].dropna()
    repeated = votes.duplicated([item, crowd.annotator_column])
    if repeated.any():
        example = votes.loc[repeated, [item, crowd.annotator_column]].iloc[0].tolist()
        raise ValueError(
            f"Dataset '{ANNOTATIONS_DATASET}': {int(repeated.sum())} repeated (item, annotator) pairs, e.g. "
            f"{example}; keep one label per annotator and item."
        )
    overall = votes[crowd.label_column].value_counts()
    order = sorted(overall.index, key=lambda label: (-overall[label], str(label)))
    counts = pd.crosstab(votes[item], votes[crowd.label_column]).reindex(
        columns=order, fill_value=0
    )
    per_item = counts.sum(axis=1)
    pairs = per_item * (per_item - 1)
    agreement = ((counts**2).sum(axis=1) - per_item) / pairs.where(pairs > 0)
    flagged = (
        (per_item < crowd.min_annotators) | agreement.isna() | (agreement < crowd.min_agreement)
    )
    majority = counts.idxmax(axis=1)
    labels = pd.DataFrame(
        {item: counts.index[~flagged.to_numpy()], roles.target: majority[~flagged].to_numpy()}
    ).rename(columns={item: roles.key or item})
    kappa = fleiss_kappa(counts.to_numpy())
    report = {
        "enabled": True,
        "dataset": ANNOTATIONS_DATASET,
        "annotations": len(votes),
        "items": len(counts),
        "annotators": int(votes[crowd.annotator_column].nunique()),
        "annotators_per_item": {
            "min": int(per_item.min()),
            "mean": round(float(per_item.mean()), 3),
            "max": int(per_item.max()),
        },
        "label_counts": {str(label): int(overall[label]) for label in order},
        "fleiss_kappa": _json_number(kappa),
        "mean_item_agreement": _json_number(float(agreement.mean())),
        "min_agreement": crowd.min_agreement,
        "min_annotators": crowd.min_annotators,
        "labelled_items": len(labels),
        "flagged_items": int(flagged.sum()),
        "flagged_keys": [str(key) for key in counts.index[flagged.to_numpy()]],
    }
    return labels, report


# --- join ----------------------------------------------------------------------------------------------------


def _source_summary(dataset: str, frame: pd.DataFrame) -> dict[str, Any]:
    return {
        "dataset": dataset,
        "rows": len(frame),
        "columns": [str(column) for column in frame.columns],
        "content_sha256": _content_sha256(frame),
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
        api_records: records of the web API.
        web_records: records of the web pages.
        crowd_labels: aggregated crowd labels (key, target).
        parameters: ``params:data_acquisition``; ``sources.<name>.enabled`` selects the sources.
        columns: ``params:columns`` (key and target).

    Returns:
        The joined table (columns in the order of ``data_acquisition.dtypes``, others after them) and a summary
        per source: rows, columns, content hash, how many base rows it matched.

    Raises:
        ValueError: naming the source when its key column is missing or repeated, has another dtype, or when a
            source brings a column the table already has.
    """
    settings = _settings(parameters)
    roles = parse(ColumnRoles, columns, "columns")
    key = roles.key
    enabled = {
        "database": settings.sources.database.enabled,
        "api": settings.sources.api.enabled,
        "web": settings.sources.web.enabled,
        "crowd": settings.sources.crowd.enabled,
    }
    frames = {"database": billing, "api": api_records, "web": web_records}
    summary: dict[str, Any] = {"base": _source_summary(BASE_DATASET, customers), "sources": {}}
    if key is None and any(enabled.values()):
        raise ValueError(
            "params:columns.key is null, so no source can be joined; set it or disable the sources."
        )
    if key is not None and key not in customers:
        raise ValueError(
            f"Dataset '{BASE_DATASET}' has no key column '{key}' (params:columns.key); it has "
            f"{list(customers.columns)}."
        )
    table = customers
    for name, dataset in JOINED_SOURCES.items():
        if not enabled[name]:
            summary["sources"][name] = {"dataset": dataset, "enabled": False}
            continue
        source = frames[name]
        _check_joinable(table, source, name, dataset, str(key))
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
        table = table.merge(source, on=key, how="left", sort=False)
        summary["sources"][name] = {
            "enabled": True,
            **_source_summary(dataset, source),
            "matched_base_rows": matched,
            "unmatched_source_rows": int((~source[key].isin(customers[key])).sum()),
        }
    if enabled["crowd"]:
        _check_joinable(table, crowd_labels, "crowd", ANNOTATIONS_DATASET, str(key))
        label = table[key].map(crowd_labels.set_index(key)[roles.target])
        covered = label.notna()
        base_target = table[roles.target] if roles.target in table else None
        replaced = int(
            (covered & (base_target.ne(label) if base_target is not None else covered)).sum()
        )
        table = table.assign(
            **{roles.target: label if base_target is None else label.where(covered, base_target)}
        )
        summary["sources"]["crowd"] = {
            "enabled": True,
            "dataset": ANNOTATIONS_DATASET,
            "rows": len(crowd_labels),
            "matched_base_rows": int(covered.sum()),
            "changed_targets": replaced,
        }
    else:
        summary["sources"]["crowd"] = {"dataset": ANNOTATIONS_DATASET, "enabled": False}
    order = settings.dtypes or {}
    ordered = [column for column in order if column in table]
    table = table[ordered + [column for column in table.columns if column not in order]]
    summary["joined"] = {"rows": len(table), "columns": len(table.columns)}
    return table, summary


# --- validation ----------------------------------------------------------------------------------------------


def _role_of(column: str, roles: ColumnRoles) -> str:
    if column == roles.key:
        return " (the key, params:columns.key)"
    if column == roles.target:
        return " (the target, params:columns.target)"
    return ""


def _build_schema(dtypes: Mapping[str, str] | None, roles: ColumnRoles) -> pa.DataFrameSchema:
    named = {"key": [roles.key] if roles.key else [], "target": [roles.target]}
    named |= {role: getattr(roles, role) or [] for role in ("numeric", "categorical", "text")}
    if dtypes is None:
        # No dtypes configured: the columns params:columns names must be there, with numbers where it says
        # numeric; any other column passes as read.
        return _roles_schema(named, roles)
    unknown = [
        f"columns.{role} names '{c}'" for role, cs in named.items() for c in cs if c not in dtypes
    ]
    if unknown:
        raise ValueError(
            f"params:{KEY}.dtypes lists every column of the acquired table, but {'; '.join(unknown)}. "
            "Add the column to the dtypes or fix params:columns."
        )
    schema_columns = {}
    for column, name in dtypes.items():
        expected = pd.api.types.pandas_dtype(name)
        checks = [
            pa.Check(
                lambda s, expected=expected: s.dtype == expected,
                name=f"dtype {name}",
                error=f"dtype {name}",
            )
        ]
        if column == roles.target:
            checks.append(
                pa.Check(
                    lambda s: s.dropna().nunique() >= 2, name="two classes", error="two classes"
                )
            )
        schema_columns[column] = pa.Column(
            checks=checks, nullable=column != roles.key, unique=column == roles.key, required=True
        )
    return pa.DataFrameSchema(
        schema_columns,
        strict=True,
        checks=[pa.Check(lambda frame: len(frame) > 0, name="not empty", error="not empty")],
    )


def _roles_schema(named: Mapping[str, list[str]], roles: ColumnRoles) -> pa.DataFrameSchema:
    schema_columns = {}
    for role, columns in named.items():
        for column in columns:
            checks = []
            if role == "numeric":
                checks.append(
                    pa.Check(
                        pd.api.types.is_numeric_dtype,
                        name="a number",
                        error="a number",
                        element_wise=False,
                    )
                )
            if role == "target":
                checks.append(
                    pa.Check(
                        lambda s: s.dropna().nunique() >= 2, name="two classes", error="two classes"
                    )
                )
            schema_columns[column] = pa.Column(
                checks=checks,
                nullable=column != roles.key,
                unique=column == roles.key,
                required=True,
            )
    return pa.DataFrameSchema(
        schema_columns,
        strict=False,
        checks=[pa.Check(lambda frame: len(frame) > 0, name="not empty", error="not empty")],
    )


def _describe_failures(errors: SchemaErrors, table: pd.DataFrame, roles: ColumnRoles) -> list[str]:
    cases = errors.failure_cases
    lines = []
    for (column, check), group in cases.groupby(
        [cases["column"].astype(str), cases["check"].astype(str)], sort=False, dropna=False
    ):
        values = [str(value) for value in group["failure_case"].tolist()]
        if check == "column_in_schema":
            lines.extend(f"extra column '{value}' (not in {KEY}.dtypes)" for value in values)
        elif check == "column_in_dataframe":
            lines.extend(f"missing column '{value}'{_role_of(value, roles)}" for value in values)
        elif check.startswith("dtype "):
            lines.append(f"column '{column}' has dtype {table[column].dtype}, expected {check[6:]}")
        elif check == "a number":
            lines.append(
                f"column '{column}' (params:columns.numeric) has dtype {table[column].dtype}, expected a "
                "number"
            )
        elif check == "field_uniqueness":
            unique = sorted(set(values))
            lines.append(
                f"duplicate keys in '{column}': {len(unique)} value(s) on {len(values)} rows, e.g. {unique[:5]}"
            )
        elif check == "not_nullable":
            lines.append(
                f"column '{column}'{_role_of(column, roles)} has {len(values)} missing value(s)"
            )
        elif check == "two classes":
            classes = sorted(map(str, table[column].dropna().unique())) if column in table else []
            lines.append(
                f"target '{column}' has {len(classes)} class(es) {classes}; it needs at least two"
            )
        elif check == "not empty":
            lines.append("the table is empty (0 rows)")
        else:
            lines.append(f"column '{column}' fails {check}: {values[:5]}")
    return lines


def validate_table(
    table: pd.DataFrame, parameters: dict[str, Any], columns: dict[str, Any]
) -> pd.DataFrame:
    """Check the joined table before anything past ``01_raw`` is written.

    The expected columns and dtypes are ``data_acquisition.dtypes``; the key must be present and unique, the
    target present with at least two classes, and the table not empty. With ``dtypes`` null, the columns
    ``params:columns`` names must be present (numeric ones as numbers) and other columns pass as read.

    Args:
        table: the joined table.
        parameters: ``params:data_acquisition``.
        columns: ``params:columns``.

    Returns:
        The table, unchanged.

    Raises:
        ValueError: one error listing every violation (missing or extra columns, wrong dtypes, duplicate or
            missing keys, empty table, missing target or fewer than two classes).
    """
    settings = _settings(parameters)
    roles = parse(ColumnRoles, columns, "columns")
    schema = _build_schema(settings.dtypes, roles)
    try:
        return schema.validate(table, lazy=True)
    except SchemaErrors as errors:
        lines = _describe_failures(errors, table, roles)
    raise ValueError(
        f"The acquired table fails validation ({len(lines)} problem(s)); nothing was written:\n"
        + "\n".join(f"  - {line}" for line in lines)
        + f"\nFix the sources, or params:{KEY}.dtypes and params:columns if the table is right."
    )


# --- de-identification ---------------------------------------------------------------------------------------


def pseudonymise(values: pd.Series, salt: str) -> pd.Series:
    """HMAC-SHA256 of each value's text under ``salt``, as hex; missing values stay missing.

    Pseudonymisation, not anonymisation: equal values get equal digests, so rows stay linkable and anyone with
    the salt can test guesses.
    """
    key = salt.encode()
    digests = [
        None if pd.isna(value) else hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()
        for value in values
    ]
    return pd.Series(digests, index=values.index, name=values.name, dtype="str")


def deidentify_table(
    table: pd.DataFrame, parameters: dict[str, Any], columns: dict[str, Any]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Drop or hash the columns of ``data_acquisition.sensitive``.

    Args:
        table: the validated table.
        parameters: ``params:data_acquisition`` (``sensitive.drop``, ``sensitive.hash``, ``sensitive.salt``).
        columns: ``params:columns``: the target can be neither dropped nor hashed, the key not dropped.

    Returns:
        The acquired table and what was done (for the acquisition report).

    Raises:
        ValueError: when a sensitive column is not in the table or is the target (or a dropped key).
    """
    sensitive = _settings(parameters).sensitive
    roles = parse(ColumnRoles, columns, "columns")
    named = [*sensitive.drop, *sensitive.hash]
    missing = [column for column in named if column not in table]
    if missing:
        raise ValueError(
            f"{KEY}.sensitive names {missing}, which the acquired table does not have; its columns are "
            f"{list(table.columns)}."
        )
    if roles.target in named:
        raise ValueError(
            f"{KEY}.sensitive names the target '{roles.target}'; the workflow needs it as it is."
        )
    if roles.key in sensitive.drop:
        raise ValueError(
            f"{KEY}.sensitive.drop names the key '{roles.key}'; hash it instead, or set params:columns.key "
            "to null."
        )
    result = table.drop(columns=sensitive.drop)
    if sensitive.hash:
        result = result.assign(
            **{column: pseudonymise(result[column], sensitive.salt) for column in sensitive.hash}
        )
    summary = {
        "dropped": list(sensitive.drop),
        "hashed": list(sensitive.hash),
        "method": "HMAC-SHA256 with a secret salt (pseudonymisation, not anonymisation)"
        if sensitive.hash
        else None,
        "rows": len(result),
        "columns": [str(column) for column in result.columns],
    }
    return result, summary


def report_acquisition(
    join_summary: dict[str, Any],
    api_provenance: dict[str, Any],
    web_provenance: dict[str, Any],
    annotation_report: dict[str, Any],
    deidentification: dict[str, Any],
) -> dict[str, Any]:
    """Gather what the acquisition read and did into one report.

    Args:
        join_summary: rows, content hashes and matches per source.
        api_provenance: the web API's provenance record.
        web_provenance: the web pages' provenance record.
        annotation_report: the crowd labels' agreement report.
        deidentification: the columns dropped and hashed.

    Returns:
        The acquisition report: per source its provenance, rows and matched base rows; the output table.
    """
    sources = {name: dict(entry) for name, entry in join_summary["sources"].items()}
    sources["api"]["provenance"] = api_provenance
    sources["web"]["provenance"] = web_provenance
    if annotation_report.get("enabled"):
        sources["crowd"]["agreement"] = {
            name: annotation_report[name]
            for name in ("fleiss_kappa", "mean_item_agreement", "items", "flagged_items")
        }
    return {
        "base": join_summary["base"],
        "sources": sources,
        "joined": join_summary["joined"],
        "deidentification": {
            name: deidentification[name] for name in ("dropped", "hashed", "method")
        },
        "acquired_table": {
            "rows": deidentification["rows"],
            "columns": deidentification["columns"],
        },
    }
