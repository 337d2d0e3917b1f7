"""Headless Chromium for tests: a screenshot of a page, or its DOM after its scripts ran."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

NAMES = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str:
    """The Chromium executable; skips the test, saying how to install it, when there is none."""
    for name in NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium is not installed (apt-get install chromium)")


def _run(arguments: list[str], timeout: int = 180) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    flags += ["--no-first-run", "--hide-scrollbars", "--virtual-time-budget=20000"]
    return subprocess.run(
        [chromium(), *flags, *arguments],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def screenshot(url: str, path: Path, width: int = 1280, height: int = 2400) -> Path:
    result = _run([f"--screenshot={path}", f"--window-size={width},{height}", url])
    assert path.is_file(), result.stderr[-2000:]
    return path


def dom(url: str) -> str:
    result = _run(["--dump-dom", url])
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def distinct_colours(png: Path) -> int:
    """How many distinct colours a PNG holds: a blank page has one or two, a page with plots thousands."""
    import matplotlib.image
    import numpy as np

    pixels = (matplotlib.image.imread(png)[..., :3] * 255).astype("uint8").reshape(-1, 3)
    return len(np.unique(pixels, axis=0))
