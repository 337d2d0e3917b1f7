"""Local HTTP servers and parameter helpers for the data_acquisition tests."""

from __future__ import annotations

import copy
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pandas as pd
import pytest
import yaml

# status, headers, body
Answer = tuple[int, dict[str, str], bytes]
App = Callable[["Handler"], Answer]


class Handler(BaseHTTPRequestHandler):
    """Answers GET requests with the server's app and remembers the requested paths."""

    server: LocalServer

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.server.paths.append(self.path)
        status, headers, body = self.server.app(self)
        self.server.bodies.append(body)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class LocalServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 and an ephemeral port, serving ``app`` from a thread."""

    daemon_threads = True

    def __init__(self, app: App) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.app = app
        self.paths: list[str] = []
        self.bodies: list[bytes] = []
        # Handlers that hang (time-out tests) wait on this; the fixture sets it when the test ends.
        self.release = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (time-out tests) closes the socket before the answer is written.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator[Callable[[App], LocalServer]]:
    """Start local HTTP servers; all are stopped when the test ends."""
    servers: list[LocalServer] = []

    def start(app: App) -> LocalServer:
        server = LocalServer(app)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()


def json_answer(text: str, status: int = 200) -> Answer:
    return status, {"Content-Type": "application/json"}, text.encode()


def html_answer(text: str, status: int = 200) -> Answer:
    return status, {"Content-Type": "text/html; charset=utf-8"}, text.encode()


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` merged in, nested dictionaries key by key."""
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


# Tiny waits: the tests exercise retries and back-off, not the clock.
FAST_HTTP = {
    "timeout_seconds": 0.3,
    "max_retries": 2,
    "backoff_seconds": 0.01,
    "backoff_max_seconds": 0.02,
    "max_requests_per_second": 1000,
    "user_agent": "dlw-test",
}


@pytest.fixture(scope="session")
def base_parameters(project_path) -> dict:
    """``params:data_acquisition`` of conf/base."""
    path = project_path / "conf" / "base" / "parameters_data_acquisition.yml"
    return yaml.safe_load(path.read_text())["data_acquisition"]


@pytest.fixture(scope="session")
def columns(project_path) -> dict:
    """``params:columns`` of conf/base."""
    return yaml.safe_load((project_path / "conf" / "base" / "parameters.yml").read_text())[
        "columns"
    ]


@pytest.fixture
def settings(base_parameters) -> Callable[..., dict]:
    """``params:data_acquisition`` with the given overrides."""

    def build(**overrides: Any) -> dict:
        return merge(base_parameters, overrides)

    return build


@pytest.fixture(scope="session")
def telco(project_path) -> pd.DataFrame:
    return pd.read_csv(project_path / "data" / "01_raw" / "telco_churn.csv")


@pytest.fixture(scope="session")
def catalog_config(project_path) -> dict:
    """The catalog entries of conf/base/catalog_data_acquisition.yml, file paths made absolute."""
    config = yaml.safe_load(
        (project_path / "conf" / "base" / "catalog_data_acquisition.yml").read_text()
    )
    for entry in config.values():
        if "filepath" in entry:
            entry["filepath"] = str(project_path / entry["filepath"])
    return config


@pytest.fixture(scope="session")
def sqlite_credentials(project_path) -> dict:
    return {
        "source_database": {
            "con": f"sqlite:///{project_path / 'data' / '01_raw' / 'telco_billing.sqlite'}"
        }
    }
