"""The catalog: every dataset a pipeline uses is declared, and every file dataset saves atomically."""

from __future__ import annotations

import warnings

import pytest
from kedro.io.catalog_config_resolver import CatalogConfigResolver
from kedro.io.core import parse_dataset_definition

from deep_learning_workflow.datasets.atomic import AtomicSaveMixin
from deep_learning_workflow.datasets.chunked import TableChunksDataset  # read-only
from deep_learning_workflow.datasets.parquet_split import ParquetSplitDataset  # read-only

from .conftest import PROJECT_PATH

# Every environment of the project (conf/local is private to each machine).
ENVIRONMENTS = tuple(
    sorted(
        path.name
        for path in (PROJECT_PATH / "conf").iterdir()
        if path.is_dir() and path.name != "local"
    )
)


def _config(project_path, env: str, key: str) -> dict:
    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():
        # omegaconf's own deprecation notice about a resolver API Kedro still calls.
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(str(project_path / "conf"), base_env="base", default_run_env=env)
        return dict(loader[key])


@pytest.fixture(scope="module")
def registered_pipelines(project_path) -> dict:
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    from deep_learning_workflow.pipeline_registry import register_pipelines

    return register_pipelines()


def undeclared(pipelines: dict, resolver: CatalogConfigResolver) -> dict[str, list[str]]:
    """Per pipeline, the datasets neither named in the catalog nor matched by one of its dataset patterns.

    A catch-all pattern (``{name}``) does not count: it would declare anything, typos included.
    """
    found = {}
    for name, pipeline in pipelines.items():
        missing = sorted(
            dataset
            for dataset in pipeline.datasets()
            if not dataset.startswith("params:")
            and dataset != "parameters"
            and dataset not in resolver.config
            and resolver.match_dataset_pattern(dataset) is None
        )
        if missing:
            found[name] = missing
    return found


def test_every_dataset_of_every_pipeline_is_declared_in_the_base_catalog(
    project_path, registered_pipelines
):
    resolver = CatalogConfigResolver(
        _config(project_path, "base", "catalog"),
        _config(project_path, "base", "credentials"),
        default_runtime_patterns={},
    )
    missing = undeclared(registered_pipelines, resolver)
    assert not missing, (
        f"declare these datasets in conf/base/catalog_<pipeline>.yml: {missing}. An intermediate kept in memory "
        "on purpose gets `type: MemoryDataset` and a comment saying why."
    )


def test_the_declaration_check_sees_an_undeclared_output():
    from kedro.pipeline import Pipeline, node
    from kedro.pipeline import pipeline as namespaced_pipeline

    pipeline = Pipeline([node(lambda x: x, "raw", "forgotten", name="f")])
    resolver = CatalogConfigResolver(
        {"raw": {"type": "MemoryDataset"}, "{name}": {"type": "MemoryDataset"}},
        default_runtime_patterns={},
    )
    assert undeclared({"p": pipeline}, resolver) == {"p": ["forgotten"]}
    patterned = CatalogConfigResolver(
        {"raw": {"type": "MemoryDataset"}, "{namespace}.forgotten": {"type": "MemoryDataset"}},
        default_runtime_patterns={},
    )
    namespaced = namespaced_pipeline(
        Pipeline([node(lambda x: x, "raw", "forgotten", name="f")]),
        namespace="tuned",
        inputs={"raw"},
    )
    assert undeclared({"p": namespaced}, patterned) == {}


def _file_datasets(catalog: dict) -> dict[str, dict]:
    """Entry name -> the config of the dataset that writes a file (the wrapped one inside an MLflow artifact)."""
    files = {}
    for name, entry in catalog.items():
        inner = entry.get("dataset") if isinstance(entry.get("dataset"), dict) else entry
        if "filepath" in inner:
            files[name] = inner
    return files


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_file_dataset_of_the_catalog_saves_atomically(project_path, env):
    files = _file_datasets(_config(project_path, env, "catalog"))
    assert "train" in files and "validation_metrics" in files
    not_atomic = {
        name: entry["type"]
        for name, entry in files.items()
        if not issubclass(
            parse_dataset_definition(dict(entry))[0],
            AtomicSaveMixin | TableChunksDataset | ParquetSplitDataset,
        )
    }
    assert not not_atomic, (
        "use a dataset of deep_learning_workflow.datasets.atomic (or add AtomicSaveMixin) for "
        f"{not_atomic}"
    )
