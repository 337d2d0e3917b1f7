"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# `kedro run` walks the workflow from acquisition to the serving bundle; tuning is opt-in (--pipelines tuning).
DEFAULT_PIPELINES = (
    "data_acquisition",
    "data_processing",
    "splitting",
    "modelling",
    "evaluation",
    "serving",
)


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
