"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

# `kedro run` runs every pipeline of the project except these: steps a person decides to take. Serving
# (`--pipelines serving`) exports only a model the release gate passed; tuning (`--pipelines tuning`) and pruning
# (`--pipelines model_pruning`) spend much more time than the workflow itself. A pipeline added with
# `kedro pipeline create` joins the default run; add its name here to keep it out.
OPT_IN_PIPELINES = ("tuning", "serving", "model_pruning")


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = find_pipelines(raise_errors=True)
    pipelines["__default__"] = sum(
        (pipeline for name, pipeline in pipelines.items() if name not in OPT_IN_PIPELINES),
        Pipeline([]),
    )
    return pipelines
