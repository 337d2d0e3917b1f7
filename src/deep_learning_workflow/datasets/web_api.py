"""The web API source as a Kedro dataset: every page of a JSON API, with time-outs, retries, a rate limit and
a provenance record of every response (:mod:`deep_learning_workflow.datasets.http_client`).

The catalog entry holds what the parameters cannot: where the server is and how it pages. A ``url`` of null
switches the source off: the dataset then loads a table without columns and a provenance record saying so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any, Literal
from urllib.parse import urljoin

import pandas as pd
from pydantic import Field, NonNegativeInt, PositiveInt

from .http_client import (
    HttpClient,
    HttpSettings,
    SourceRead,
    cast_columns,
    disabled_source,
    redact_url,
)
from .web_source import DtypeName, HttpUrl, SourceSettings, WebSourceDataset

API = "api_source"


QueryValue = str | int | float | bool


class Paging(SourceSettings):
    """How the web API splits its records into pages.

    ``page``: request ``page_param`` = first_page, first_page + 1, ... (and ``size_param`` = page_size when set)
    until a page has no records. ``next_link``: follow the URL found at ``next_link_path`` of each JSON body until
    it is null or missing. ``none``: one request.
    """

    style: Literal["page", "next_link", "none"] = "page"
    page_param: str = "page"
    first_page: NonNegativeInt = 1
    size_param: str | None = "per_page"
    page_size: PositiveInt = 100
    next_link_path: str = "next"
    max_pages: PositiveInt = Field(
        1000, description="More pages than this is an error, never a silent cut"
    )


class WebAPISettings(SourceSettings):
    """The arguments of :class:`WebAPIDataset`: a paginated JSON HTTP API whose records carry the key column."""

    url: HttpUrl | None = Field(None, description="The first page; null switches the source off")
    query: dict[str, QueryValue] = Field(
        default_factory=dict, description="Query parameters of every request"
    )
    records_path: str = Field(
        "",
        description="Dotted path to the list of records in each JSON body; empty when the body is the list",
    )
    paging: Paging = Paging()
    rename: dict[str, str] = Field(default_factory=dict, description="Record field -> column name")
    columns: list[str] | None = Field(
        None, description="Columns to keep (after renaming); null keeps every field"
    )
    dtypes: dict[str, DtypeName] = Field(
        default_factory=dict, description="Column -> pandas dtype to cast to"
    )
    http: HttpSettings = HttpSettings()


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


def _page_records(body: Any, api: WebAPISettings, url: str) -> list[dict[str, Any]]:
    records = _at_path(body, api.records_path)
    if not isinstance(records, list) or not all(isinstance(record, dict) for record in records):
        shape = sorted(body) if isinstance(body, dict) else type(body).__name__
        raise ValueError(
            f"{API}: {redact_url(url)} has no list of JSON objects at records_path '{api.records_path}' "
            f"(the body is {shape}). Set {API}.records_path to where the records are."
        )
    return records


def _api_records(client: HttpClient, api: WebAPISettings) -> Iterator[dict[str, Any]]:
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


def read_web_api(api: WebAPISettings) -> SourceRead:
    """Read every page of the JSON web API into a table.

    Returns:
        The records (nested fields flattened to ``a.b`` columns, renamed, selected and cast as configured) and
        the provenance record.

    Raises:
        HttpSourceError: when the server cannot be reached or keeps failing after the retries.
        ValueError: on malformed JSON, records not where ``records_path`` says, or missing columns.
    """
    if api.url is None:
        return disabled_source(API)
    with HttpClient(api.http, source=API) as client:
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
        return SourceRead(frame, client.provenance(rows=len(frame)))


class WebAPIDataset(WebSourceDataset):
    """A paginated JSON web API, read only; loads a :class:`SourceRead` (records and provenance).

    Example (catalog)::

        api_source:
          type: deep_learning_workflow.datasets.web_api.WebAPIDataset
          url: https://api.example.com/v1/customers
          records_path: items
          paging: {style: page, page_param: page, size_param: per_page, page_size: 100}
          http: {timeout_seconds: 10, max_retries: 3, max_requests_per_second: 2}

    The arguments are those of :class:`WebAPISettings`; they are checked when the catalog is built, so a bad one
    stops the run before its first node.
    """

    source = API
    settings_type = WebAPISettings
    read = staticmethod(read_web_api)

    def _describe(self) -> dict[str, Any]:
        url = self._settings.url
        return {"url": redact_url(str(url)) if url else None}
