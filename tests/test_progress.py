"""When progress is shown: a terminal outside CI shows it, logs and CI runs stay quiet."""

from __future__ import annotations

import io

import pytest

from deep_learning_workflow.progress import interactive, keras_verbose, progress_bar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class ClosedTerminal(Terminal):
    def isatty(self) -> bool:
        raise ValueError("I/O operation on closed file")


@pytest.mark.parametrize(
    ("stream", "environ", "expected"),
    [
        (Terminal(), {}, True),
        (Terminal(), {"CI": ""}, True),
        (Terminal(), {"CI": "false"}, True),
        (Terminal(), {"CI": "0"}, True),
        (Terminal(), {"CI": "true"}, False),
        (Terminal(), {"CI": "1"}, False),
        (Terminal(), {"CI": "woodpecker"}, False),
        (io.StringIO(), {}, False),
        (ClosedTerminal(), {}, False),
        (object(), {}, False),
    ],
    ids=[
        "terminal",
        "terminal-empty-ci",
        "terminal-ci-false",
        "terminal-ci-0",
        "ci-true",
        "ci-1",
        "ci-named",
        "pipe-or-file",
        "closed-stream",
        "no-isatty",
    ],
)
def test_progress_is_shown_only_in_a_terminal_outside_ci(stream, environ, expected):
    assert interactive(stream, environ) is expected
    assert keras_verbose(stream, environ) == (1 if expected else 0)


def test_defaults_read_standard_error_and_the_environment(monkeypatch):
    monkeypatch.setattr("sys.stderr", Terminal())
    monkeypatch.delenv("CI", raising=False)
    assert interactive() is True
    monkeypatch.setenv("CI", "true")
    assert interactive() is False


def test_the_progress_bar_is_disabled_when_not_interactive(monkeypatch):
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with progress_bar(5, "trials") as bar:
        bar.update(2)
        assert bar.disable
