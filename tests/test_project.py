"""Project-level promises: telemetry stays off, secrets stay out of git, start-up stays free of TensorFlow."""

from __future__ import annotations

import re
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
    "path",
    [
        "conf/local/credentials.yml",
        "conf/local/parameters.yml",
        "conf/local/anything.yml",
        "conf/local/nested/catalog.yml",
        "conf/test/credentials.yml",
        "conf/base/credentials_production.yml",
        "conf/prod/credentials.yml",
    ],
)
def test_local_config_and_credentials_are_ignored(project_path, path):
    assert _ignored(project_path, path)


def _committed(project_path: Path) -> list[str]:
    """The files git tracks and those `git add --all` would add (untracked and not ignored)."""
    result = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=project_path,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip("not a git checkout: cannot list the committed files")
    names = {name for name in result.stdout.decode().split("\0") if name}
    return sorted(name for name in names if (project_path / name).is_file())


# The committed credentials files: an example of the keys and the embedded SQLite defaults (no secret).
COMMITTED_CREDENTIALS = {"conf/credentials.example.yml", "conf/base/credentials.yml"}
SECRET_FILE = re.compile(
    r"(?i)(^|/)([^/]*(credential|secret)[^/]*\.(ya?ml|json|toml|ini|cfg|txt|env)|\.env(\.[^/]*)?|\.netrc"
    r"|\.pgpass|[^/]*\.(pem|key|p12|pfx))$"
)
# scheme://user:password@ in the files users copy from; the password part must be a placeholder.
URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@'\"]+:([^@\s/'\"]+)@")
PLACEHOLDERS = {"password", "change-me", "***"}


def test_no_credentials_file_is_committed_outside_the_examples(project_path):
    committed = _committed(project_path)
    assert COMMITTED_CREDENTIALS <= set(committed)
    assert sorted(name for name in committed if SECRET_FILE.search(name)) == sorted(
        COMMITTED_CREDENTIALS
    )


def test_committed_configuration_and_docs_hold_only_placeholder_passwords(project_path):
    found = {}
    for name in _committed(project_path):
        if name.startswith("tests/") or not name.endswith(
            (".yml", ".yaml", ".md", ".toml", ".cfg", ".ini", ".py", ".ipynb", ".sh")
        ):
            continue
        text = (project_path / name).read_text(encoding="utf-8", errors="replace")
        passwords = set(URL_PASSWORD.findall(text)) - PLACEHOLDERS
        if passwords:
            found[name] = sorted(passwords)
    assert found == {}


def test_embedded_default_credentials_hold_no_secret(project_path):
    credentials = yaml.safe_load((project_path / "conf/base/credentials.yml").read_text())
    # A salt is set locally, never committed.
    assert credentials.pop("deidentification") == {"salt": None}
    assert credentials.pop("dask_scheduler") == {"address": None}  # a LocalCluster
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
