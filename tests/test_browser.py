"""The model report and the kedro-viz static site, rendered in headless Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.browser import chromium, distinct_colours, dom, screenshot
from tests.conftest import run_kedro
from tests.ports import free_port
from tests.test_kedro_viz import DEFAULT_GROUPS


def _drawn(page: str, kind: str) -> set[str]:
    """The full names of the graph nodes of one kind (``task``, ``data``, ``modularPipeline``) a page draws."""
    pattern = rf'data-node-type="{kind}" data-node-fullname="([^"]+)"'
    return set(re.findall(pattern, page))


@pytest.mark.slow
def test_model_report_renders_plots_in_a_browser(project_copy, tmp_path):
    chromium()
    result = run_kedro(project_copy, "run", "--env", "test")
    assert result.returncode == 0, result.stderr[-3000:]
    report = project_copy / "data/08_reporting/model_report.html"
    page = dom(report.as_uri())
    # plotly drew every figure: each plot's div holds an SVG once its script ran.
    assert page.count('class="main-svg"') >= 4, page[:2000]
    assert "The model was" in page
    picture = screenshot(report.as_uri(), tmp_path / "report.png")
    assert distinct_colours(picture) > 200


@pytest.mark.slow
def test_kedro_viz_static_site_shows_nodes_when_served(project_copy):
    chromium()
    result = run_kedro(project_copy, "viz", "build", "--include-previews")
    assert result.returncode == 0, result.stdout[-2000:]
    port = free_port()
    # The documented way to open the site: serve the folder over HTTP.
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", "build"],
        cwd=project_copy,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/main", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the HTTP server never answered"
                time.sleep(0.5)
        page = dom(f"http://127.0.0.1:{port}/")
        # A node of the default pipeline is drawn, with its name as kedro-viz prettifies it.
        assert "Raw Customers" in page or "raw_customers" in page, page[-3000:]
        # Each pipeline of the default run is drawn as one collapsed group, and no single task node.
        assert _drawn(page, "modularPipeline") == DEFAULT_GROUPS, page[-3000:]
        assert not _drawn(page, "task")
        # Opened from disk the same page shows no node: the site fetches its data over HTTP.
        from_disk = dom((project_copy / "build" / "index.html").as_uri())
        assert "Raw Customers" not in from_disk and "raw_customers" not in from_disk
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
