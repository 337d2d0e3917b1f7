"""Start the REST service.

    python -m deep_learning_workflow.service --bundle data/07_model_output/serving_bundle --host 127.0.0.1 --port 8000
    python -m deep_learning_workflow.service --bundle B1 --canary-bundle B2 --canary-fraction 0.1 --shadow-bundle B3

Settings come from ``--config FILE`` (default ``conf/base/service.yml`` when run from the project folder), then
``DLW_SERVICE_<SETTING>`` environment variables, then these flags (``--<setting-with-dashes>``). SIGTERM or Ctrl-C
first drain (``/readyz`` answers 503 and responses close their connection, for ``drain_seconds``), then stop
accepting connections, let in-flight requests finish (up to ``graceful_timeout_seconds``), flush the
prediction log and exit 0. ``--workers N`` serves with N processes on the port (one per core uses them all; see
:mod:`.workers`).
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

from .settings import cli_flags, coerce, load_settings
from .workers import configure_logging, serve_workers


def parse_args(argv: list[str] | None = None) -> tuple[str | None, dict[str, object]]:
    parser = argparse.ArgumentParser(
        prog="python -m deep_learning_workflow.service",
        description="Serve a serving bundle over HTTP.",
    )
    parser.add_argument(
        "--config", help="YAML settings file (default: conf/base/service.yml if present)"
    )
    for flag, name, annotation in cli_flags():
        # Only the flags given reach the settings ("--log-url null" switches the log off).
        if annotation is bool:
            parser.add_argument(
                flag, dest=name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS
            )
        else:
            parser.add_argument(
                flag,
                dest=name,
                type=partial(coerce, name),
                default=argparse.SUPPRESS,
                metavar=name.upper(),
            )
    args = vars(parser.parse_args(argv))
    config = args.pop("config")
    return config, args


def main(argv: list[str] | None = None) -> int:
    config, overrides = parse_args(argv)
    try:
        settings = load_settings(config, overrides)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings)
    if settings.workers > 1:
        return serve_workers(settings)
    from .app import create_app
    from .server import build_server

    build_server(create_app(settings), settings).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
