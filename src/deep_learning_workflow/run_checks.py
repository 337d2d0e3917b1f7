"""A run that reads raw files which are not there stops before anything starts, naming the files.

Without this check a run in a folder without ``data/01_raw`` (a packaged run in a fresh folder, a typo in a
catalog path) opens its MLflow run and runs until the first node that loads the file, deep in a traceback.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import DatasetError


class MissingRawDataError(DatasetError):
    """Raw files a run reads are missing."""


def missing_raw_files(pipeline: Any, catalog: Any) -> list[str]:
    """``"<dataset>: <path>"`` for every raw-layer file the pipeline reads (a free input) that does not exist."""
    missing = []
    for name in sorted(pipeline.inputs()):
        if name.startswith("params:") or name == "parameters" or name not in catalog:
            continue
        dataset = catalog.get(name)
        layer = ((getattr(dataset, "metadata", None) or {}).get("kedro-viz") or {}).get("layer")
        filepath = getattr(dataset, "_filepath", None)
        if layer != "raw" or filepath is None:
            continue
        if not dataset.exists():
            missing.append(f"{name}: {PurePosixPath(filepath)}")
    return missing


class CheckRawFilesHook:
    """Stops the run before its first node (and before its MLflow run opens) when a raw input file is missing."""

    @hook_impl(tryfirst=True)
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        missing = missing_raw_files(pipeline, catalog)
        if missing:
            raise MissingRawDataError(
                "The run reads raw files that do not exist:\n  "
                + "\n  ".join(missing)
                + "\nRun from the project folder (the one holding data/01_raw), copy the raw data there, or point "
                "the catalog entries at your files."
            )
