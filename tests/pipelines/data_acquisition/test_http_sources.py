"""The web API and web page sources against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import socket
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import pytest
from kedro.io import DatasetError

from deep_learning_workflow.datasets.http_client import (
    HttpClient,
    HttpSettings,
    HttpSourceError,
    RateLimiter,
    redact_url,
)
from deep_learning_workflow.datasets.web_api import WebAPIDataset
from deep_learning_workflow.datasets.web_pages import WebPagesDataset
from deep_learning_workflow.pipelines.data_acquisition.nodes import (
    read_api_source,
    read_web_source,
)

from .conftest import FAST_HTTP, html_answer, json_answer, merge


@pytest.fixture
def settings(catalog_config):
    """The catalog entries api_source and web_source of conf/base, fast HTTP settings and the given overrides."""

    def build(sources: dict | None = None) -> dict:
        entries = {}
        for name in ("api", "web"):
            entry = {
                key: value
                for key, value in catalog_config[f"{name}_source"].items()
                if key not in ("type", "metadata")
            }
            entries[name] = merge(entry, {"http": FAST_HTTP, **(sources or {}).get(name, {})})
        return entries

    return build


def load(dataset: WebAPIDataset | WebPagesDataset):
    """Load as the catalog does; the source's own error is raised (Kedro wraps it in a DatasetError whose message
    ends with the source's)."""
    try:
        return dataset.load()
    except DatasetError as error:
        if error.__cause__ is None:
            raise
        assert str(error.__cause__) in str(error)
        raise error.__cause__ from None


def fetch_api_records(config: dict) -> tuple[pd.DataFrame, dict]:
    """Load ``api_source`` as the catalog would, then run its node."""
    return read_api_source(load(WebAPIDataset(**config)))


def scrape_web_pages(config: dict) -> tuple[pd.DataFrame, dict]:
    """Load ``web_source`` as the catalog would, then run its node."""
    return read_web_source(load(WebPagesDataset(**config)))


RECORDS = [
    {
        "customer_id": f"C{i:05d}",
        "satisfaction": i % 5,
        "plan": {"tier": "gold" if i % 2 else "basic"},
    }
    for i in range(1, 251)
]


def api_settings(settings, url: str, **api) -> dict:
    return settings(sources={"api": {"url": url, **api}})["api"]


def paged_app(handler):
    query = parse_qs(urlsplit(handler.path).query)
    page, size = int(query["page"][0]), int(query["per_page"][0])
    return json_answer(json.dumps({"items": RECORDS[(page - 1) * size : page * size]}))


def test_api_reads_every_page_and_records_provenance(serve, settings):
    server = serve(paged_app)
    host = server.url.removeprefix("http://")
    url = f"http://reader:s3cret-pw@{host}/customers?api_key=TOPSECRET&region=eu"

    frame, provenance = fetch_api_records(api_settings(settings, url))

    assert frame["customer_id"].tolist() == [record["customer_id"] for record in RECORDS]
    assert frame["satisfaction"].tolist() == [record["satisfaction"] for record in RECORDS]
    assert frame["plan.tier"].iloc[:2].tolist() == ["gold", "basic"]  # nested fields flattened
    # pages 1-3 hold 100 + 100 + 50 records; page 4 is empty and ends the paging
    assert [parse_qs(urlsplit(path).query)["page"] for path in server.paths] == [
        ["1"],
        ["2"],
        ["3"],
        ["4"],
    ]
    assert all("region=eu" in path for path in server.paths)
    assert provenance["rows"] == 250
    assert len(provenance["urls"]) == 4
    assert provenance["sha256"] == hashlib.sha256(b"".join(server.bodies)).hexdigest()
    assert [r["sha256"] for r in provenance["responses"]] == [
        hashlib.sha256(b).hexdigest() for b in server.bodies
    ]
    assert datetime.fromisoformat(provenance["retrieved_at"]).utcoffset().total_seconds() == 0
    written = json.dumps(provenance)
    assert "s3cret-pw" not in written and "reader" not in written and "TOPSECRET" not in written
    assert "api_key=REDACTED" in provenance["urls"][0]


def test_api_follows_next_links(serve, settings):
    pages = {
        "/v1/customers": {
            "data": {"items": RECORDS[:2]},
            "links": {"next": "/v1/customers?cursor=b"},
        },
        "/v1/customers?cursor=b": {"data": {"items": RECORDS[2:3]}, "links": {"next": None}},
    }
    server = serve(lambda handler: json_answer(json.dumps(pages[handler.path])))
    parameters = api_settings(
        settings,
        f"{server.url}/v1/customers",
        records_path="data.items",
        paging={"style": "next_link", "next_link_path": "links.next"},
        columns=["customer_id", "satisfaction"],
        dtypes={"satisfaction": "float64"},
    )

    frame, provenance = fetch_api_records(parameters)

    assert list(frame.columns) == ["customer_id", "satisfaction"]
    assert frame["customer_id"].tolist() == ["C00001", "C00002", "C00003"]
    assert frame["satisfaction"].dtype == "float64"
    assert server.paths == ["/v1/customers", "/v1/customers?cursor=b"]
    assert provenance["rows"] == 3


def test_api_retries_a_server_that_fails_twice_then_succeeds(serve, settings):
    answers = iter(
        [
            json_answer('{"error": "busy"}', status=503),
            (429, {"Retry-After": "0"}, b"slow down"),
            json_answer(json.dumps({"items": RECORDS[:5]})),
        ]
    )
    server = serve(lambda handler: next(answers))
    parameters = api_settings(settings, f"{server.url}/customers", paging={"style": "none"})

    frame, provenance = fetch_api_records(parameters)

    assert len(server.paths) == 3
    assert frame["customer_id"].tolist() == [record["customer_id"] for record in RECORDS[:5]]
    assert provenance["rows"] == 5
    assert len(provenance["responses"]) == 1  # failed attempts are not content


def test_api_gives_up_after_the_bounded_retries(serve, settings):
    server = serve(lambda handler: json_answer("{}", status=500))
    parameters = api_settings(settings, f"{server.url}/customers", paging={"style": "none"})

    with pytest.raises(HttpSourceError, match=r"failed 3 time\(s\), last: HTTP 500") as error:
        fetch_api_records(parameters)

    assert len(server.paths) == FAST_HTTP["max_retries"] + 1
    assert f"{server.url}/customers" in str(error.value)
    assert "api_source" in str(error.value)


def test_backoff_doubles_and_is_bounded():
    waits: list[float] = []
    settings = HttpSettings(backoff_seconds=1.0, backoff_max_seconds=5.0, max_retries=4)
    client = HttpClient(settings, source="test", sleep=waits.append)

    assert [client.backoff(attempt, None) for attempt in range(4)] == [1.0, 2.0, 4.0, 5.0]
    assert client.backoff(0, "3") == 3.0  # Retry-After when longer
    assert client.backoff(0, "3600") == 5.0  # but never beyond the bound


def test_api_rejects_malformed_json(serve, settings):
    server = serve(lambda handler: json_answer('{"items": [{"customer_id": "C1",'))
    parameters = api_settings(settings, f"{server.url}/customers", paging={"style": "none"})

    with pytest.raises(ValueError, match="malformed JSON") as error:
        fetch_api_records(parameters)

    assert f"{server.url}/customers" in str(error.value)
    assert len(server.paths) == 1  # a broken body is not retried


def test_api_times_out(serve, settings):
    def hang(handler):
        handler.server.release.wait(10)
        return json_answer("{}")

    server = serve(hang)
    parameters = api_settings(settings, f"{server.url}/slow", paging={"style": "none"})

    with pytest.raises(HttpSourceError, match=r"no answer within 0.3 s"):
        fetch_api_records(parameters)

    assert len(server.paths) == FAST_HTTP["max_retries"] + 1


def test_api_on_a_closed_port_is_a_clear_error(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parameters = api_settings(
        settings, f"http://127.0.0.1:{port}/customers", paging={"style": "none"}
    )

    with pytest.raises(HttpSourceError, match="connection failed"):
        fetch_api_records(parameters)


def test_api_client_errors_are_not_retried(serve, settings):
    server = serve(lambda handler: json_answer('{"error": "not found"}', status=404))
    parameters = api_settings(settings, f"{server.url}/nowhere", paging={"style": "none"})

    with pytest.raises(HttpSourceError, match="HTTP 404"):
        fetch_api_records(parameters)
    assert len(server.paths) == 1


def test_api_records_in_the_wrong_place_or_too_many_pages(serve, settings):
    server = serve(lambda handler: json_answer(json.dumps({"results": RECORDS[:3]})))
    wrong_path = api_settings(settings, f"{server.url}/c", paging={"style": "none"})
    with pytest.raises(
        ValueError, match=r"no list of JSON objects at records_path 'items'.*\['results'\]"
    ):
        fetch_api_records(wrong_path)

    endless = api_settings(
        settings, f"{server.url}/c", records_path="results", paging={"max_pages": 3}
    )
    with pytest.raises(ValueError, match=r"still more pages after 3; raise api_source.paging"):
        fetch_api_records(endless)


def test_disabled_sources_return_nothing_and_say_so(settings):
    for node, source in ((fetch_api_records, "api"), (scrape_web_pages, "web")):
        frame, provenance = node(settings()[source])
        assert frame.empty and len(frame.columns) == 0
        assert provenance == {"enabled": False, "source": f"{source}_source", "rows": 0}


def test_rate_limiter_spaces_calls():
    now = [100.0]
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    limiter.wait()
    limiter.wait()
    now[0] += 0.1
    limiter.wait()
    now[0] += 1.0
    limiter.wait()

    assert waits == pytest.approx([0.25, 0.15])
    limiter.slow_down(2.0)  # e.g. robots.txt's Crawl-delay
    limiter.wait()
    limiter.wait()
    assert waits[-1] == pytest.approx(2.0)
    limiter.slow_down(0.1)  # never speeds up
    assert limiter.interval == 2.0


def test_redact_url():
    assert redact_url("https://u:p@example.org:8443/a/b?token=x&page=2#f") == (
        "https://example.org:8443/a/b?token=REDACTED&page=2"
    )


# --- web pages -----------------------------------------------------------------------------------------------

ROBOTS_ALLOW = "User-agent: *\nDisallow: /private/\n"

TABLE_PAGE = """<html><body><h1>Customers</h1>
<table id="customers">
  <thead><tr><th>Customer</th><th>Rating</th><th>Segment</th></tr></thead>
  <tbody>
    <tr><td>C00001</td><td>4.5</td><td>retail</td></tr>
    <tr><td>C00002</td><td>3.0</td><td></td></tr>
  </tbody>
</table>
{next}
</body></html>"""

ITEMS_PAGE = """<html><body>
<div class="customer"><span class="id">C00003</span><span class="rating">5.0</span></div>
<div class="customer"><span class="id">C00004</span></div>
</body></html>"""


def site(pages: dict[str, str], robots: str | None = ROBOTS_ALLOW):
    def app(handler):
        if handler.path == "/robots.txt":
            if robots is None:
                return 404, {}, b"no robots here"
            return 200, {"Content-Type": "text/plain"}, robots.encode()
        if handler.path in pages:
            return html_answer(pages[handler.path])
        return html_answer("<html>not found</html>", status=404)

    return app


def web_settings(settings, urls: list[str], **web) -> dict:
    return settings(sources={"web": {"urls": urls, **web}})["web"]


TABLE_SOURCE = {
    "table_selector": "table#customers",
    "next_selector": "a.next",
    "rename": {"Customer": "customer_id", "Rating": "rating", "Segment": "segment"},
    "required_columns": ["customer_id", "rating"],
    "dtypes": {"rating": "float64"},
}


def test_web_reads_table_pages_following_next_links(serve, settings):
    pages = {
        "/customers/1": TABLE_PAGE.format(next='<a class="next" href="/customers/2">next</a>'),
        "/customers/2": TABLE_PAGE.replace("C00001", "C00005")
        .replace("C00002", "C00006")
        .format(next=""),
    }
    server = serve(site(pages))

    frame, provenance = scrape_web_pages(
        web_settings(settings, [f"{server.url}/customers/1"], **TABLE_SOURCE)
    )

    expected = pd.DataFrame(
        {
            "customer_id": ["C00001", "C00002", "C00005", "C00006"],
            "rating": [4.5, 3.0, 4.5, 3.0],
            "segment": ["retail", None, "retail", None],
        }
    )
    pd.testing.assert_frame_equal(frame, expected, check_dtype=False)
    assert frame["rating"].dtype == "float64"
    assert server.paths == ["/robots.txt", "/customers/1", "/customers/2"]
    assert provenance["rows"] == 4
    assert provenance["urls"] == [
        f"{server.url}/robots.txt",
        f"{server.url}/customers/1",
        f"{server.url}/customers/2",
    ]
    assert provenance["sha256"] == hashlib.sha256(b"".join(server.bodies)).hexdigest()


def test_web_reads_repeated_items(serve, settings):
    server = serve(site({"/list": ITEMS_PAGE}, robots=None))  # no robots.txt: everything allowed
    parameters = web_settings(
        settings,
        [f"{server.url}/list"],
        item_selector="div.customer",
        fields={"customer_id": ".id", "rating": ".rating"},
        dtypes={"rating": "float64"},
    )

    frame, provenance = scrape_web_pages(parameters)

    assert frame["customer_id"].tolist() == ["C00003", "C00004"]
    assert frame["rating"].iloc[0] == 5.0 and pd.isna(frame["rating"].iloc[1])
    assert provenance["rows"] == 2


def test_web_honours_robots_txt(serve, settings):
    server = serve(site({"/private/customers": TABLE_PAGE.format(next="")}))
    parameters = web_settings(settings, [f"{server.url}/private/customers"], **TABLE_SOURCE)

    with pytest.raises(
        PermissionError,
        match=r"robots.txt disallows .*/private/customers for user agent 'dlw-test'",
    ):
        scrape_web_pages(parameters)

    assert server.paths == ["/robots.txt"]  # the page itself was never requested


def test_web_robots_crawl_delay_slows_the_client(serve):
    server = serve(site({}, robots="User-agent: *\nCrawl-delay: 2\n"))
    with HttpClient(HttpSettings(**FAST_HTTP), source="test") as client:
        client.check_robots(f"{server.url}/anything")
        assert client.limiter.interval == 2.0


@pytest.mark.parametrize(
    ("page", "match"),
    [
        (
            "<html><body><div class='grid'><p>C00001 4.5</p></div></body></html>",
            r"has no element matching table_selector \(selector 'table#customers'\)",
        ),
        (
            TABLE_PAGE.replace("<th>Rating</th>", "<th>Score</th>").format(next=""),
            r"lacks required column\(s\) \['rating'\]",
        ),
        (
            "<html><table id='customers'><tr><th>Customer</th><th>Rating</th></tr></table></html>",
            "has a table without data rows",
        ),
    ],
    ids=["selector-finds-nothing", "column-renamed", "no-rows"],
)
def test_web_page_with_a_changed_layout_is_a_clear_error(serve, settings, page, match):
    server = serve(site({"/customers": page}))
    parameters = web_settings(settings, [f"{server.url}/customers"], **TABLE_SOURCE)

    with pytest.raises(ValueError, match=match) as error:
        scrape_web_pages(parameters)

    assert f"{server.url}/customers" in str(error.value)
    assert "layout may have changed" in str(error.value)


def test_web_items_whose_field_vanished_is_a_clear_error(serve, settings):
    server = serve(site({"/list": ITEMS_PAGE.replace('class="id"', 'class="ident"')}))
    parameters = web_settings(
        settings,
        [f"{server.url}/list"],
        item_selector="div.customer",
        fields={"customer_id": ".id", "rating": ".rating"},
    )

    with pytest.raises(
        ValueError, match=r"no value for field 'customer_id' in any item \(selector '.id'\)"
    ):
        scrape_web_pages(parameters)


@pytest.mark.parametrize(
    ("dataset", "settings", "match"),
    [
        (WebAPIDataset, {"url": "ftp://h/x"}, r"must be an http:// or https:// URL"),
        (WebAPIDataset, {"url": None, "paging": {"style": "pages"}}, r"paging.style"),
        (WebAPIDataset, {"url": None, "http": {"timeout_seconds": 0}}, r"http.timeout_seconds"),
        (WebPagesDataset, {"urls": ["http://h/p"]}, r"exactly one of table_selector"),
        (WebPagesDataset, {"urls": [], "colour": "red"}, r"colour"),
    ],
)
def test_bad_catalog_settings_are_rejected_when_the_catalog_is_built(dataset, settings, match):
    with pytest.raises(DatasetError, match=match):
        dataset(**settings)
