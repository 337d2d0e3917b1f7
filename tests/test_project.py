"""Project-level promises: telemetry stays off, secrets stay out of git, start-up stays free of TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml


def _ignored(project_path: Path, relative: str) -> bool:
    result = subprocess.run(["git", "check-ignore", "-q", relative], cwd=project_path, check=False)
    if result.returncode not in (0, 1):
        pytest.skip("not a git checkout: cannot ask git what it ignores")
    return result.returncode == 0


def test_telemetry_opt_out_is_committed(project_path):
    assert (project_path / ".telemetry").read_text().strip() == "consent: false"
    assert not _ignored(project_path, ".telemetry")


@pytest.mark.parametrize(
    "path", ["conf/local/credentials.yml", "conf/local/parameters.yml", "conf/test/credentials.yml"]
)
def test_local_config_and_credentials_are_ignored(project_path, path):
    assert _ignored(project_path, path)


def test_embedded_default_credentials_hold_no_secret(project_path):
    credentials = yaml.safe_load((project_path / "conf/base/credentials.yml").read_text())
    assert all(entry["con"].startswith("sqlite:///") for entry in credentials.values())
    assert not _ignored(project_path, "conf/base/credentials.yml")


PROBE = """
import sys
from pathlib import Path
from kedro.framework.project import pipelines
from kedro.framework.startup import bootstrap_project
bootstrap_project(Path.cwd())
names = sorted(pipelines)
assert all(len(pipelines[name].nodes) for name in names if name != "__default__"), names
print(",".join(names))
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


def test_pipeline_registry_does_not_import_tensorflow(project_path):
    before = (project_path / "pyproject.toml").read_bytes()
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=project_path,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    names_line, imported_line = result.stdout.strip().splitlines()[-2:]
    assert "__default__" in names_line.split(",")
    assert imported_line == "False False"
    assert (project_path / "pyproject.toml").read_bytes() == before
