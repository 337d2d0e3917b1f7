"""The web API source: every page of a JSON API, read through the project's HTTP client."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urljoin

import pandas as pd

from .common import API, cast_columns, settings_of
from .http_client import HttpClient, disabled_provenance, redact_url
from .schema import ApiSource


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
    settings = settings_of(parameters)
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
        frame = cast_columns(frame, api.dtypes, where, API)
        return frame, client.provenance(rows=len(frame))
