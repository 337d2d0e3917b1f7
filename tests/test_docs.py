"""The documentation builds with Sphinx and myst-parser, warnings counting as errors."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
import warnings

import pytest
import yaml

PAGES = (
    "workflow",
    "own_data",
    "tuning",
    "deployment",
    "architecture",
    "limits",
    "evaluation",
    "serving",
    "notebooks",
)


def test_docs_build_without_warnings(project_path, tmp_path):
    missing = [name for name in ("sphinx", "myst_parser") if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"{' and '.join(missing)} not installed: pip install sphinx myst-parser")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            str(project_path / "docs"),
            str(tmp_path / "html"),
            "-d",
            str(tmp_path / "doctrees"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for page in PAGES:
        assert (tmp_path / "html" / f"{page}.html").is_file(), page
    index = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    assert "workflow.html" in index and "limits.html" in index


def _yaml_blocks(markdown: str) -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", markdown, flags=re.DOTALL)
    return [yaml.safe_load(block) for block in blocks]


def test_bring_your_own_data_examples_are_valid_configuration(project_path):
    """The guide's snippets, merged over conf/base as an environment would be, pass the parameter schemas and build
    catalog entries that replace existing ones."""
    from kedro.config import OmegaConfigLoader
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project
    from kedro.io import DataCatalog
    from omegaconf import OmegaConf

    from deep_learning_workflow.parameters import schema_for, validate_parameters

    bootstrap_project(project_path)
    assert pipelines[
        "data_acquisition"
    ].nodes  # imports the pipelines, which register their schemas
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(
            str(project_path / "conf"), base_env="base", default_run_env="base"
        )
        base_parameters, base_catalog = dict(loader["parameters"]), dict(loader["catalog"])

    blocks = _yaml_blocks((project_path / "docs" / "own_data.md").read_text(encoding="utf-8"))
    catalog_blocks = [b for b in blocks if all("type" in entry for entry in b.values())]
    parameter_blocks = [b for b in blocks if b not in catalog_blocks]
    assert catalog_blocks and parameter_blocks

    for block in catalog_blocks:
        assert set(block) <= set(base_catalog), set(block) - set(base_catalog)
        DataCatalog.from_config(block)

    documented = set()
    for block in parameter_blocks:
        documented |= set(block)
        merged = {
            key: OmegaConf.to_container(OmegaConf.merge(base_parameters.get(key, {}), value))
            if isinstance(value, dict)
            else value
            for key, value in block.items()
        }
        assert all(schema_for(key) is not None for key in merged), list(merged)
        validate_parameters(merged)
    assert {"columns", "problem", "data_acquisition", "data_processing"} <= documented
