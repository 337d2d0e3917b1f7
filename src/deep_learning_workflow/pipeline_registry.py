"""Project pipelines."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline, pipeline

# `kedro run` runs every pipeline of the project except these: steps a person decides to take. Serving
# (`--pipelines serving`) exports only a model the release gate passed; tuning (`--pipelines tuning`) and pruning
# (`--pipelines model_pruning`) spend much more time than the workflow itself. A pipeline added with
# `kedro pipeline create` joins the default run; add its name here to keep it out.
OPT_IN_PIPELINES = ("tuning", "serving", "model_pruning")


def group_nodes(name: str, pipe: Pipeline) -> Pipeline:
    """``pipe`` with its nodes in the namespace ``name``, so kedro-viz folds the pipeline into one group.

    Only node names change (``split_clean_table`` becomes ``splitting.split_clean_table``): datasets and
    parameters keep their names, so the catalog, the output paths and ``catalog.load`` in notebooks stay as they
    are. Nodes a pipeline already reuses under a namespace of its own (``tuned``, ``pruned``) keep it.

    Args:
        name: The registered pipeline's name, used as the namespace.
        pipe: The pipeline as its ``create_pipeline`` builds it.

    Returns:
        The same nodes, the pipeline's own ones namespaced.
    """
    own = Pipeline([node for node in pipe.nodes if not node.namespace])
    if not own.nodes:
        return pipe
    grouped = pipeline(own, namespace=name, prefix_datasets_with_namespace=False)
    return grouped + (pipe - own)


def register_pipelines() -> dict[str, Pipeline]:
    """Register the project's pipelines, each one's nodes in a namespace named after it.

    Returns:
        A mapping from pipeline names to ``Pipeline`` objects.
    """
    pipelines = {
        name: group_nodes(name, pipe) for name, pipe in find_pipelines(raise_errors=True).items()
    }
    pipelines["__default__"] = sum(
        (pipe for name, pipe in pipelines.items() if name not in OPT_IN_PIPELINES),
        Pipeline([]),
    )
    return pipelines
