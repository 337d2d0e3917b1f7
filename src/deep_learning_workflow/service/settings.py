"""Service settings: defaults < YAML file (``conf/base/service.yml``) < ``DLW_SERVICE_*`` variables < flags.

Every field of :class:`ServiceSettings` can be set in each of the three places: ``max_batch_size`` in the YAML file
is ``DLW_SERVICE_MAX_BATCH_SIZE`` in the environment and ``--max-batch-size`` on the command line. Secrets (a
PostgreSQL password in ``log_url``) belong in the environment, not in the committed file.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from deep_learning_workflow.parameters import Parameters

ENV_PREFIX = "DLW_SERVICE_"
DEFAULT_CONFIG = Path("conf/base/service.yml")


class ServiceSettings(Parameters):
    """What the REST service serves and how (see ``conf/base/service.yml`` for the documented defaults)."""

    bundle: str = Field(
        "data/07_model_output/serving_bundle", description="Serving bundle folder of the model"
    )
    canary_bundle: str | None = Field(
        None, description="Second version that answers a share of the requests"
    )
    canary_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of requests the canary answers"
    )
    shadow_bundle: str | None = Field(
        None, description="Second version that scores every request, only logged"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(1024, ge=1, description="Most records in one request")
    max_body_bytes: int = Field(
        2 * 1024 * 1024, ge=1024, description="Larger bodies get 413 before parsing"
    )
    max_concurrency: int = Field(
        64, ge=1, description="Requests in flight beyond this get 503 at once"
    )
    range_policy: Literal["margin", "finite"] = Field(
        "margin",
        description="margin: refuse numbers beyond the training range widened by range_margin",
    )
    range_margin: float = Field(
        0.5, ge=0.0, description="Multiple of the training range added on each side"
    )
    engine: Literal["auto", "numpy", "tf.function"] = Field(
        "auto",
        description="auto: NumPy fast path, tf.function when the model holds a layer it cannot compile",
    )
    log_url: str | None = Field(
        "sqlite:///data/07_model_output/prediction_log.sqlite",
        description="SQLAlchemy URL of the prediction log; null switches logging off",
    )
    log_table: str = "predictions"
    log_queue_size: int = Field(
        50_000,
        ge=1,
        description="Records waiting to be logged beyond this make requests wait for room (back-pressure)",
    )
    log_wait_seconds: float = Field(
        30.0,
        gt=0.0,
        description="A request waits this long for room in a full log queue; then its rows are dropped (counted)",
    )
    log_flush_seconds: float = Field(0.5, gt=0.0)
    drift_window: int = Field(
        2000, ge=10, description="Recent records the live drift gauges are computed on"
    )
    drift_interval_seconds: float = Field(60.0, gt=0.0)
    drift: dict[str, Any] = Field(
        default_factory=dict,
        description="DriftSettings of the serving pipeline (metric, thresholds, min_rows)",
    )
    blas_threads: int | None = Field(
        1,
        ge=1,
        description="Threads of NumPy's BLAS; 1 suits many small requests (null: the library's default)",
    )
    graceful_timeout_seconds: float = Field(
        30.0, gt=0.0, description="In-flight requests get this long on SIGTERM"
    )
    drain_seconds: float = Field(
        5.0,
        ge=0.0,
        description="On SIGTERM, keep serving this long with /readyz at 503 before closing the listener",
    )
    body_timeout_seconds: float = Field(
        10.0, gt=0.0, description="A request body not received within this gets 408"
    )
    keep_alive_seconds: float = Field(
        5.0, gt=0.0, description="An idle keep-alive connection is closed after this"
    )
    max_connections: int = Field(
        1024, ge=1, description="Connections beyond this get 503 (uvicorn's limit_concurrency)"
    )
    workers: int = Field(
        1,
        ge=1,
        description="Processes serving the port; each loads the bundles (one per core uses them all)",
    )
    access_log: bool = False
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _canary_needs_bundle(self) -> ServiceSettings:
        if self.canary_fraction > 0 and not self.canary_bundle:
            raise ValueError("canary_fraction > 0 needs canary_bundle")
        return self


NULLS = {"", "null", "none", "~"}


def coerce(name: str, value: str) -> Any:
    """A setting given as text (environment, command line): text settings stay text (a bundle folder named
    ``2024`` is not a number), 'null' means None; others are read as YAML ('12' -> 12, 'true' -> True, '{}')."""
    annotation = ServiceSettings.model_fields[name].annotation
    if annotation is str or str in typing.get_args(annotation):
        return (
            None if value.lower() in NULLS and type(None) in typing.get_args(annotation) else value
        )
    return yaml.safe_load(value) if value != "" else None


def load_settings(
    config: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ServiceSettings:
    """Merge the settings' sources.

    Args:
        config: YAML file; None reads ``conf/base/service.yml`` when it exists (run from the project folder).
        overrides: values given on the command line.
        environ: environment (defaults to ``os.environ``).

    Raises:
        ValueError: naming the invalid setting and where it came from.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = Path(config) if config is not None else DEFAULT_CONFIG
    if config is not None or path.is_file():
        if not path.is_file():
            raise ValueError(f"Service config file '{path}' does not exist.")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"Service config file '{path}' must hold a mapping of settings.")
        values.update(loaded)
    fields = ServiceSettings.model_fields
    for name in fields:
        variable = ENV_PREFIX + name.upper()
        if variable in environ:
            values[name] = coerce(name, environ[variable])
    values.update(overrides or {})
    try:
        return ServiceSettings(**values)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in error.errors()
        )
        raise ValueError(
            f"Invalid service settings ({path}, {ENV_PREFIX}* variables, flags): {problems}"
        ) from None


def cli_flags() -> Sequence[tuple[str, str, Any]]:
    """(flag, field, annotation) of every setting, for the command line."""
    return [
        (f"--{name.replace('_', '-')}", name, field.annotation)
        for name, field in ServiceSettings.model_fields.items()
    ]
