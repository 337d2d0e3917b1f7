"""The web page source: records from HTML tables or repeated items, robots.txt and the rate limit honoured."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin

import pandas as pd
from bs4 import BeautifulSoup, Tag

from .common import WEB, cast_columns, settings_of
from .http_client import HttpClient, disabled_provenance, redact_url
from .schema import WebSource


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
    settings = settings_of(parameters)
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
        frame = cast_columns(frame, web.dtypes, WEB, WEB)
        return frame, client.provenance(rows=len(frame))
