"""The web page source as a Kedro dataset: records from HTML tables or repeated items, robots.txt, the rate limit,
retries and a provenance record of every response honoured (:mod:`deep_learning_workflow.datasets.http_client`).

No ``urls`` switches the source off: the dataset then loads a table without columns and a provenance record saying
so.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import pandas as pd
from bs4 import BeautifulSoup, Tag
from pydantic import Field, PositiveInt, model_validator

from .http_client import (
    HttpClient,
    HttpSettings,
    SourceRead,
    cast_columns,
    disabled_source,
    redact_url,
)
from .web_source import DtypeName, HttpUrl, SourceSettings, WebSourceDataset

WEB = "web_source"


class WebPagesSettings(SourceSettings):
    """Web pages holding a table (``table_selector``) or repeated items (``item_selector`` + ``fields``)."""

    urls: list[HttpUrl] = Field(
        default_factory=list, description="First page(s) to read; none switches the source off"
    )
    table_selector: str | None = Field(
        None, description="CSS selector of the <table>; its header row names the columns"
    )
    item_selector: str | None = Field(None, description="CSS selector of each repeated item")
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Items: column -> CSS selector inside an item (its text is the value)",
    )
    next_selector: str | None = Field(
        None, description="CSS selector of the link to the next page; null reads each URL only"
    )
    max_pages: PositiveInt = 100
    rename: dict[str, str] = Field(
        default_factory=dict, description="Header or field -> column name"
    )
    required_columns: list[str] = Field(
        default_factory=list,
        description="Columns every page must have (after renaming); a page without them has changed layout",
    )
    dtypes: dict[str, DtypeName] = Field(
        default_factory=dict, description="Column -> pandas dtype (page text is str)"
    )
    http: HttpSettings = HttpSettings()

    @model_validator(mode="after")
    def _one_layout(self) -> WebPagesSettings:
        if not self.urls:
            return self
        if (self.table_selector is None) == (self.item_selector is None):
            raise ValueError("web_source needs exactly one of table_selector and item_selector")
        if self.item_selector is not None and not self.fields:
            raise ValueError(
                "web_source.fields (column -> CSS selector) is required with item_selector"
            )
        return self


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


def _table_rows(soup: BeautifulSoup, web: WebPagesSettings, url: str) -> list[dict[str, Any]]:
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


def _item_rows(soup: BeautifulSoup, web: WebPagesSettings, url: str) -> list[dict[str, Any]]:
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


def _page_frame(soup: BeautifulSoup, web: WebPagesSettings, url: str) -> pd.DataFrame:
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


def read_web_pages(web: WebPagesSettings) -> SourceRead:
    """Read records from HTML pages, honouring robots.txt and the rate limit.

    Each URL of ``urls`` is read, then the pages its ``next_selector`` link leads to, up to ``max_pages`` in all.
    Records come from the rows of the table at ``table_selector`` (header cells name the columns) or from the items
    at ``item_selector`` (one column per entry of ``fields``).

    Raises:
        PermissionError: when robots.txt disallows a page.
        HttpSourceError: when a server cannot be reached, keeps failing or answers 4xx.
        ValueError: when a page's layout does not match the selectors (naming the URL and the selector).
    """
    if not web.urls:
        return disabled_source(WEB)
    frames = []
    with HttpClient(web.http, source=WEB) as client:
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
        frame = cast_columns(pd.concat(frames, ignore_index=True), web.dtypes, WEB, WEB)
        return SourceRead(frame, client.provenance(rows=len(frame)))


class WebPagesDataset(WebSourceDataset):
    """HTML pages holding a table or repeated items, read only; loads a :class:`SourceRead`.

    Example (catalog)::

        web_source:
          type: deep_learning_workflow.datasets.web_pages.WebPagesDataset
          urls: [https://example.com/customers]
          table_selector: table#customers
          next_selector: a[rel=next]
          http: {max_requests_per_second: 1}

    The arguments are those of :class:`WebPagesSettings`, checked when the catalog is built.
    """

    source = WEB
    settings_type = WebPagesSettings
    read = staticmethod(read_web_pages)

    def _describe(self) -> dict[str, Any]:
        return {"urls": [redact_url(url) for url in self._settings.urls]}
