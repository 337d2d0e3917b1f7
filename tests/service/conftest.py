"""Fixtures of the service tests: real bundles (small models trained on the demo data) and live servers on
127.0.0.1 (uvicorn in a thread of the test process, or a subprocess where a fresh process matters)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from deep_learning_workflow.service.settings import ServiceSettings

from .bundles import REVIEW_ROLES, TELCO_ROLES, build_bundle, raw_records, review_frame, telco_frame

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def telco_train():
    return telco_frame(1500, seed=0)


@pytest.fixture(scope="session")
def telco_rows():
    """400 rows the models never trained on; total_charges is missing in some (the demo table's 11 missing values
    are all in the training sample, so a few more are blanked out)."""
    import numpy as np
    import pandas as pd

    from .bundles import TELCO

    frame = pd.read_csv(TELCO)
    train_ids = set(telco_frame(1500, seed=0)["customer_id"])
    rows = (
        frame[~frame["customer_id"].isin(train_ids)]
        .sample(400, random_state=5)
        .reset_index(drop=True)
    )
    rows.loc[rows.index[::50], "total_charges"] = np.nan
    return rows


@pytest.fixture(scope="session")
def telco_records(telco_rows) -> list[dict[str, Any]]:
    return raw_records(telco_rows, TELCO_ROLES)


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bundles")


@pytest.fixture(scope="session")
def telco_bundle(bundle_dir, telco_train) -> Path:
    """One-hot categorical encoding, no batch normalisation (the modelling defaults)."""
    return build_bundle(bundle_dir / "telco_a", telco_train, TELCO_ROLES, seed=1, threshold=0.4)


@pytest.fixture(scope="session")
def telco_bundle_b(bundle_dir, telco_train) -> Path:
    """Embeddings, batch normalisation and gelu: another model version of the same problem."""
    return build_bundle(
        bundle_dir / "telco_b",
        telco_train,
        TELCO_ROLES,
        seed=2,
        threshold=0.5,
        categorical={"encoding": "embedding", "embedding_dim": 4},
        batch_norm=True,
        activation="gelu",
    )


@pytest.fixture(scope="session")
def review_bundle(bundle_dir) -> Path:
    """Text (TextVectorization -> Embedding -> average) and a categorical product id."""
    return build_bundle(
        bundle_dir / "reviews",
        review_frame(800, seed=0),
        REVIEW_ROLES,
        seed=3,
        text={"max_tokens": 2000, "output_sequence_length": 32, "embedding_dim": 8},
    )


@pytest.fixture(scope="session")
def coverage_bundle(bundle_dir) -> Path:
    """Layer kinds the modelling defaults do not use; its empty-text output is NaN (see bundles.coverage_model)."""
    from deep_learning_workflow.bundle import write_bundle

    from .bundles import COVERAGE_ROLES, bundle_metadata, coverage_model, reviews_with_length

    train = reviews_with_length(600, seed=21)
    model = coverage_model(train)
    path = bundle_dir / "coverage"
    write_bundle(path, model, bundle_metadata(model, train, COVERAGE_ROLES))
    return path


class ThreadServer:
    """The service app under uvicorn in a background thread, on an ephemeral port of 127.0.0.1."""

    def __init__(self, settings: ServiceSettings) -> None:
        from deep_learning_workflow.service.app import create_app
        from deep_learning_workflow.service.server import build_server

        self.app = create_app(settings)
        self.server = build_server(
            self.app,
            settings.model_copy(
                update={
                    "host": "127.0.0.1",
                    "port": 0,
                    "log_level": "warning",
                    "graceful_timeout_seconds": 5,
                }
            ),
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        state = self.app.state.service
        deadline = time.monotonic() + timeout
        while not state.ready:
            if state.status == "failed" or time.monotonic() > deadline:
                raise RuntimeError(f"service not ready: {state.status} {state.error}")
            time.sleep(0.05)

    def flush_log(self) -> None:
        assert self.app.state.service.writer.flush(10)

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture
def serve():
    """Start thread servers for a test: ``with`` not needed, they stop at teardown."""
    started: list[ThreadServer] = []

    def start(ready: bool = True, **settings: Any) -> ThreadServer:
        server = ThreadServer(ServiceSettings(**settings)).__enter__()
        started.append(server)
        if ready:
            server.wait_ready()
        return server

    yield start
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture(scope="module")
def main_server(telco_bundle, tmp_path_factory) -> Iterator[ThreadServer]:
    """The telco model with small limits, a SQLite log and fast drift gauges."""
    log = tmp_path_factory.mktemp("log") / "log.sqlite"
    settings = ServiceSettings(
        bundle=str(telco_bundle),
        max_batch_size=50,
        max_body_bytes=64 * 1024,
        max_concurrency=4,
        log_url=f"sqlite:///{log}",
        log_flush_seconds=0.1,
        drift_interval_seconds=0.2,
        drift={"min_rows": 20},
    )
    with ThreadServer(settings) as server:
        server.wait_ready()
        server.log_url = settings.log_url
        yield server


@pytest.fixture
def client(main_server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=main_server.url, timeout=30) as http:
        yield http


def start_process(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """``python -m deep_learning_workflow.service`` in a fresh process (stderr kept for failures)."""
    environment = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "KEDRO_DISABLE_TELEMETRY": "1",
        **(env or {}),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "deep_learning_workflow.service", *args],
        cwd=PROJECT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
