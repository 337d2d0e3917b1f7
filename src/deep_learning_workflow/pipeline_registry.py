"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# `kedro run` walks the workflow from acquisition to the release gate. Serving (`--pipelines serving`) exports only
# a model the gate passed, and tuning (`--pipelines tuning`) and pruning (`--pipelines model_pruning`) are opt-in:
# steps a person decides to take.
DEFAULT_PIPELINES = ("data_acquisition", "data_processing", "splitting", "modelling", "evaluation")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = find_pipelines(raise_errors=True)
    # Kedro builds only the requested pipelines, so some names may be absent here.
    pipelines["__default__"] = sum(
        (pipelines[name] for name in DEFAULT_PIPELINES if name in pipelines), Pipeline([])
    )
    return pipelines
