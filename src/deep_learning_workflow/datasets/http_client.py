"""The HTTP client of the web API and web page datasets (``web_api``, ``web_pages``).

One client per source and run: time-outs on every request, bounded retries with exponential back-off on connection
errors, time-outs, HTTP 429 and 5xx (``Retry-After`` honoured up to the back-off bound), a rate limit over all of
the source's requests (robots.txt included), robots.txt rules, and a provenance record of every response: its URL
without credentials, UTC time, size and sha256.
"""

from __future__ import annotations

import hashlib
import time
import urllib.robotparser
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import pandas as pd
import requests
from pydantic import BaseModel, ConfigDict, Field, NonNegativeFloat, NonNegativeInt, PositiveFloat

# Query parameters whose values are secrets: provenance records keep their names only.
SECRET_QUERY_PARAMETERS = frozenset(
    {
        "access_token",
        "api_key",
        "apikey",
        "auth",
        "key",
        "password",
        "secret",
        "signature",
        "sig",
        "token",
    }
)
REDACTED = "REDACTED"


class HttpSettings(BaseModel):
    """How a web source talks to servers: the ``http`` argument of its catalog entry."""

    model_config = ConfigDict(extra="forbid")

    timeout_seconds: PositiveFloat = Field(
        10.0, description="Connect and read time-out of each request"
    )
    max_retries: NonNegativeInt = Field(
        3, le=10, description="Retries after a connection error, a time-out, HTTP 429 or 5xx"
    )
    backoff_seconds: NonNegativeFloat = Field(
        0.5, description="First wait before a retry; doubles at each retry"
    )
    backoff_max_seconds: NonNegativeFloat = Field(
        8.0, description="Upper bound of any wait before a retry, Retry-After included"
    )
    max_requests_per_second: PositiveFloat = Field(
        2.0, description="Rate limit over all requests of a source"
    )
    user_agent: str = Field(
        "deep-learning-workflow",
        min_length=1,
        description="Sent to servers and matched in robots.txt",
    )


class SourceRead(NamedTuple):
    """What a web source dataset loads: the records and the provenance record of the responses they came from."""

    records: pd.DataFrame
    provenance: dict[str, Any]


def disabled_source(source: str) -> SourceRead:
    """What a web source whose catalog entry names no URL loads: no columns, and a provenance record saying so."""
    return SourceRead(pd.DataFrame(), {"enabled": False, "source": source, "rows": 0})


def cast_columns(
    frame: pd.DataFrame, dtypes: Mapping[str, str], where: str, key: str
) -> pd.DataFrame:
    """``frame`` cast to ``dtypes``, naming the missing columns or the failed cast."""
    missing = [column for column in dtypes if column not in frame]
    if missing:
        raise ValueError(
            f"{where} has no column {missing} named in {key}.dtypes; it has {list(frame.columns)}."
        )
    try:
        return frame.astype(dict(dtypes))
    except (TypeError, ValueError) as error:
        raise ValueError(f"{where}: cannot cast to {key}.dtypes {dict(dtypes)}: {error}") from None


class HttpSourceError(RuntimeError):
    """A web source could not be read: the server is unreachable, keeps failing, or refuses the request."""


def redact_url(url: str) -> str:
    """The URL without user name, password and secret query values, fit for a provenance record."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    query = [
        (name, REDACTED if name.lower() in SECRET_QUERY_PARAMETERS else value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit((parts.scheme, host, parts.path, urlencode(query), ""))


class RateLimiter:
    """Spaces calls at least ``1 / max_per_second`` seconds apart."""

    def __init__(
        self,
        max_per_second: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / max_per_second
        self._clock = clock
        self._sleep = sleep
        self._next: float | None = None

    def slow_down(self, interval: float) -> None:
        """Never go faster than one call per ``interval`` seconds (e.g. a robots.txt Crawl-delay)."""
        self.interval = max(self.interval, interval)

    def wait(self) -> None:
        """Block until the next call is allowed, then book it."""
        now = self._clock()
        if self._next is not None and now < self._next:
            self._sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


class HttpClient:
    """GET with time-outs, retries, back-off, a rate limit and provenance; use it as a context manager.

    Args:
        settings: the ``http`` settings of the source's catalog entry.
        source: the catalog name of the source (``api_source``, ``web_source``), named in errors.
        session: a ``requests.Session`` to use instead of a new one.
        sleep: how to wait between retries.
    """

    def __init__(
        self,
        settings: HttpSettings,
        source: str,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.source = source
        self.limiter = RateLimiter(settings.max_requests_per_second, sleep=sleep)
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = settings.user_agent
        self._sleep = sleep
        self._responses: list[dict[str, Any]] = []
        self._digest = hashlib.sha256()
        self._robots: dict[str, urllib.robotparser.RobotFileParser] = {}

    def __enter__(self) -> HttpClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._session.close()

    def backoff(self, attempt: int, retry_after: str | None) -> float:
        """Seconds to wait before retry number ``attempt + 1``: doubling, at least Retry-After, bounded."""
        wait = self.settings.backoff_seconds * 2**attempt
        if retry_after is not None and retry_after.strip().isdigit():
            wait = max(wait, float(retry_after))
        return min(wait, self.settings.backoff_max_seconds)

    def get(self, url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """GET ``url``, retrying transient failures; any other response is returned as is.

        Raises:
            HttpSourceError: when every attempt failed with a connection error, a time-out, 429 or 5xx.
        """
        attempts = self.settings.max_retries + 1
        problem = ""
        for attempt in range(attempts):
            self.limiter.wait()
            retry_after = None
            try:
                response = self._session.get(
                    url, params=params, timeout=self.settings.timeout_seconds
                )
            except requests.Timeout:
                problem = f"no answer within {self.settings.timeout_seconds} s"
            except requests.ConnectionError as error:
                problem = f"connection failed ({type(error).__name__})"
            else:
                if response.status_code != 429 and response.status_code < 500:
                    self._record(response)
                    return response
                problem = f"HTTP {response.status_code} {response.reason}"
                retry_after = response.headers.get("Retry-After")
            if attempt + 1 < attempts:
                self._sleep(self.backoff(attempt, retry_after))
        raise HttpSourceError(
            f"{self.source}: GET {redact_url(url)} failed {attempts} time(s), last: {problem}. Check that the "
            f"server is up and the URL in {self.source} is right; {self.source}.http sets time-outs and retries."
        )

    def get_ok(self, url: str, params: Mapping[str, Any] | None = None) -> requests.Response:
        """Like :meth:`get`, but a 4xx answer is an error too."""
        response = self.get(url, params=params)
        if response.status_code >= 400:
            raise HttpSourceError(
                f"{self.source}: GET {redact_url(response.url)} answered HTTP {response.status_code} "
                f"{response.reason}. Check the URL and query in {self.source}."
            )
        return response

    def _record(self, response: requests.Response) -> None:
        self._digest.update(response.content)
        self._responses.append(
            {
                "url": redact_url(response.url),
                "status": response.status_code,
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "bytes": len(response.content),
                "sha256": hashlib.sha256(response.content).hexdigest(),
            }
        )

    def check_robots(self, url: str) -> None:
        """Raise unless the host's robots.txt lets this client's user agent fetch ``url``.

        robots.txt is read once per host, through the same client (rate limit, retries, provenance). As in
        :mod:`urllib.robotparser`: 401/403 forbid the whole site, another 4xx (no robots.txt) allows it. A
        ``Crawl-delay`` slows the rate limit down.

        Raises:
            PermissionError: when robots.txt disallows ``url``.
        """
        parts = urlsplit(url)
        root = f"{parts.scheme}://{parts.netloc}"
        rules = self._robots.get(root)
        if rules is None:
            rules = urllib.robotparser.RobotFileParser(urljoin(root, "/robots.txt"))
            response = self.get(rules.url)
            if response.status_code in (401, 403):
                rules.disallow_all = True
            elif response.status_code >= 400:
                rules.allow_all = True
            else:
                rules.parse(response.text.splitlines())
            delay = rules.crawl_delay(self.settings.user_agent)
            if delay:
                self.limiter.slow_down(float(delay))
            self._robots[root] = rules
        if not rules.can_fetch(self.settings.user_agent, url):
            raise PermissionError(
                f"{self.source}: {redact_url(rules.url)} disallows {redact_url(url)} for user agent "
                f"'{self.settings.user_agent}'. Remove the page from {self.source} or ask the site's owner."
            )

    def provenance(self, rows: int) -> dict[str, Any]:
        """What was read: every response (URL without credentials, UTC time, bytes, sha256), rows, one sha256."""
        return {
            "enabled": True,
            "source": self.source,
            "retrieved_at": self._responses[0]["fetched_at"] if self._responses else None,
            "urls": [response["url"] for response in self._responses],
            "responses": list(self._responses),
            "rows": rows,
            "sha256": self._digest.hexdigest(),
        }
