"""Service settings: defaults < YAML file < DLW_SERVICE_* environment < command-line flags."""

from __future__ import annotations

import pytest

from deep_learning_workflow.service.__main__ import parse_args
from deep_learning_workflow.service.settings import ServiceSettings, load_settings


def test_shipped_config_file_is_valid(project_path):
    settings = load_settings(project_path / "conf" / "base" / "service.yml", environ={})
    assert settings == ServiceSettings(**{**settings.model_dump()})
    assert settings.bundle == "data/07_model_output/serving_bundle"
    assert settings.log_url.startswith("sqlite:///")


def test_precedence(tmp_path):
    config = tmp_path / "service.yml"
    config.write_text("port: 9000\nmax_batch_size: 10\nrange_policy: finite\n")
    environ = {
        "DLW_SERVICE_MAX_BATCH_SIZE": "20",
        "DLW_SERVICE_LOG_URL": "null",
        "DLW_SERVICE_ACCESS_LOG": "true",
    }
    settings = load_settings(config, overrides={"max_batch_size": 30}, environ=environ)
    assert (settings.port, settings.max_batch_size, settings.range_policy) == (9000, 30, "finite")
    assert settings.log_url is None and settings.access_log is True
    assert settings.host == "127.0.0.1"


def test_command_line_flags(tmp_path):
    config, overrides = parse_args(
        [
            "--bundle",
            "b",
            "--canary-bundle",
            "c",
            "--canary-fraction",
            "0.2",
            "--port",
            "8123",
            "--no-access-log",
        ]
    )
    assert config is None
    empty = tmp_path / "service.yml"
    empty.write_text("{}\n")
    settings = load_settings(empty, overrides, environ={"DLW_SERVICE_PORT": "9999"})
    assert (settings.bundle, settings.canary_bundle, settings.canary_fraction, settings.port) == (
        "b",
        "c",
        0.2,
        8123,
    )
    assert settings.access_log is False
    assert load_settings(empty, parse_args(["--log-url", "null"])[1], environ={}).log_url is None
    assert load_settings(empty, parse_args(["--bundle", "2024"])[1], environ={}).bundle == "2024"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"DLW_SERVICE_CANARY_FRACTION": "1.5"}, "canary_fraction"),
        ({"DLW_SERVICE_CANARY_FRACTION": "0.1"}, "canary_fraction > 0 needs canary_bundle"),
        ({"DLW_SERVICE_RANGE_POLICY": "lenient"}, "range_policy"),
        ({"DLW_SERVICE_MAX_BATCH_SIZE": "0"}, "max_batch_size"),
    ],
)
def test_invalid_settings_name_the_setting(tmp_path, values, message):
    empty = tmp_path / "service.yml"
    empty.write_text("{}\n")
    with pytest.raises(ValueError, match=message):
        load_settings(empty, environ=values)


def test_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_settings(tmp_path / "nope.yml", environ={})
