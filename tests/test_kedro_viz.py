"""kedro-viz: the layers form the workflow's order, and ``kedro viz build`` works offline without TensorFlow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections import defaultdict
from dataclasses import dataclass

import pytest

# Data-engineering convention of Kedro's layers, in the order the workflow reads left to right.
LAYERS = (
    "raw",
    "intermediate",
    "primary",
    "feature",
    "model_input",
    "models",
    "model_output",
    "reporting",
)
RANK = {layer: rank for rank, layer in enumerate(LAYERS)}


def _layer(entry: dict) -> str | None:
    return ((entry.get("metadata") or {}).get("kedro-viz") or {}).get("layer")


@pytest.fixture(scope="module")
def catalog_config(project_path) -> dict[str, dict]:
    from kedro.config import OmegaConfigLoader

    with warnings.catch_warnings():
        # omegaconf's own deprecation notice about a resolver API Kedro still calls.
        warnings.simplefilter("ignore", UserWarning)
        loader = OmegaConfigLoader(
            str(project_path / "conf"), base_env="base", default_run_env="base"
        )
        return dict(loader["catalog"])


@pytest.fixture(scope="module")
def registered_pipelines(project_path) -> dict:
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project_path)
    return {name: pipelines[name] for name in pipelines if name != "__default__"}


@dataclass(frozen=True)
class _Collapsed:
    name: str
    inputs: frozenset[str]
    outputs: frozenset[str]


def _collapsed_namespaces(pipeline) -> list[_Collapsed]:
    """The node kedro-viz draws for each collapsed namespace, from its free inputs to its free outputs.

    Its layers count as well: an input of ``tuned`` must not sit in a later layer than anything ``tuned`` hands on.
    """
    collapsed = []
    for namespace in sorted({node.namespace for node in pipeline.nodes if node.namespace}):
        inner = pipeline.only_nodes_with_namespaces([namespace])
        rest = pipeline - inner
        outputs = inner.outputs() | (rest.inputs() & inner.all_outputs())
        collapsed.append(
            _Collapsed(f"{namespace} (collapsed)", frozenset(inner.inputs()), frozenset(outputs))
        )
    return collapsed


def _layer_edges(pipeline, layers: dict[str, str]) -> set[tuple[str, str, str]]:
    """``(source, node, target)`` for every layered dataset and the nearest layered datasets it feeds.

    Datasets without a layer (memory datasets between nodes) are walked through, as kedro-viz does when it orders
    layers, so ``a (models) -> memory -> b (raw)`` counts as an edge from ``a`` to ``b``.
    """
    consumers = defaultdict(list)
    for node in [*pipeline.nodes, *_collapsed_namespaces(pipeline)]:
        for name in node.inputs:
            consumers[name].append(node)

    edges = set()
    for source in layers:
        stack = [(node, node.name) for node in consumers.get(source, [])]
        seen = set()
        while stack:
            node, first = stack.pop()
            if node.name in seen:
                continue
            seen.add(node.name)
            for output in node.outputs:
                if output in layers:
                    edges.add((source, first, output))
                else:
                    stack.extend((child, first) for child in consumers.get(output, []))
    return edges


def test_every_layer_is_a_known_kedro_layer(catalog_config):
    unknown = {
        name: _layer(entry)
        for name, entry in catalog_config.items()
        if _layer(entry) is not None and _layer(entry) not in RANK
    }
    assert not unknown, f"layers must be one of {LAYERS}: {unknown}"


def test_every_persisted_dataset_of_the_pipelines_has_a_layer(catalog_config, registered_pipelines):
    used = set().union(*(pipeline.datasets() for pipeline in registered_pipelines.values()))
    missing = sorted(
        name
        for name in used & set(catalog_config)
        if _layer(catalog_config[name]) is None
        and catalog_config[name].get("type") not in ("MemoryDataset", "kedro.io.MemoryDataset")
    )
    assert not missing, f"set metadata: kedro-viz: layer: on {missing}"


def test_layers_never_go_backward(catalog_config, registered_pipelines):
    layers = {name: _layer(entry) for name, entry in catalog_config.items() if _layer(entry)}
    edges = set()
    for pipeline in registered_pipelines.values():
        edges |= _layer_edges(pipeline, layers)
    assert edges, "no dataset of the registered pipelines has a layer"

    backward = sorted(
        f"{source} ({layers[source]}) -> {node} -> {target} ({layers[target]})"
        for source, node, target in edges
        if RANK[layers[target]] < RANK[layers[source]]
    )
    assert not backward, "kedro-viz would find a loop among layers:\n" + "\n".join(backward)


def _drawn_order(layer_order: list[str], pipeline, layers: dict[str, str]) -> list[str]:
    """The layers a pipeline view draws, in kedro-viz's order.

    kedro-viz lists every layer of the project in each view but draws only those of the view's own datasets; layers
    the view's edges do not order come alphabetically, so a root dataset on ``raw`` beside one on ``model_input``
    is drawn after it.
    """
    own = {layers[name] for name in pipeline.datasets() if name in layers}
    return [layer for layer in layer_order if layer in own]


@pytest.fixture(scope="module")
def viz_layer_orders(project_path, registered_pipelines) -> dict[str, list[str]]:
    """kedro-viz's own layer order for each registered pipeline, computed in process as ``kedro viz`` does."""
    from kedro_viz.data_access import data_access_manager
    from kedro_viz.server import load_and_populate_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load_and_populate_data(project_path)
    return {
        name: data_access_manager.get_sorted_layers_for_registered_pipeline(name)
        for name in [*registered_pipelines, "__default__"]
    }


def test_every_pipeline_view_draws_its_layers_in_the_workflow_order(
    catalog_config, registered_pipelines, viz_layer_orders
):
    from kedro.framework.project import pipelines

    layers = {name: _layer(entry) for name, entry in catalog_config.items() if _layer(entry)}
    drawn = {
        name: _drawn_order(order, pipelines[name], layers)
        for name, order in viz_layer_orders.items()
    }
    out_of_order = {
        name: order for name, order in drawn.items() if order != sorted(order, key=RANK.__getitem__)
    }
    assert not out_of_order, f"views whose layers are not in the order {LAYERS}: {out_of_order}"
    assert drawn["serving"] == ["model_input", "models", "model_output", "reporting"]
    assert drawn["__default__"][0] == "raw" and drawn["__default__"][-1] == "reporting"


def test_drawn_order_keeps_only_the_views_own_layers_in_kedro_viz_order():
    from kedro.pipeline import Pipeline, node

    def identity(value):
        return value

    pipeline = Pipeline([node(identity, "scores", "report", name="report_scores")])
    layers = {"scores": "model_output", "report": "reporting", "raw_table": "raw"}
    drawn = _drawn_order(["model_output", "raw", "reporting"], pipeline, layers)
    assert drawn == ["model_output", "reporting"]


def test_layers_edge_check_catches_a_backward_edge():
    from kedro.pipeline import Pipeline, node

    def identity(value):
        return value

    pipeline = Pipeline(
        [
            node(identity, "report", "handle", name="pass_on"),
            node(identity, "handle", "bundle", name="export"),
        ]
    )
    edges = _layer_edges(pipeline, {"report": "reporting", "bundle": "model_output"})
    assert edges == {("report", "pass_on", "bundle")}


def test_layers_edge_check_sees_a_collapsed_namespace():
    from kedro.pipeline import Pipeline, node, pipeline

    def identity(value):
        return value

    inner = Pipeline(
        [
            node(identity, "train", "model", name="fit"),
            node(lambda model, report: model, ["model", "report"], "record", name="record"),
        ]
    )
    tuned = pipeline(inner, namespace="tuned", inputs={"train", "report"})
    layers = {"train": "model_input", "report": "reporting", "tuned.record": "model_output"}
    edges = _layer_edges(tuned, layers)
    assert ("report", "tuned (collapsed)", "tuned.record") in edges


# The pipelines of the default run, each drawn by kedro-viz as one collapsible group.
DEFAULT_GROUPS = {"data_acquisition", "data_processing", "splitting", "modelling", "evaluation"}


def _top_level(view: dict, kind: str) -> set[str]:
    """The ids of the elements of one ``kind`` a built pipeline view draws before any group is expanded."""
    children = view["modular_pipelines"]["__root__"]["children"]
    return {child["id"] for child in children if child["type"] == kind}


def _imported_modules(importtime_log: str) -> set[str]:
    """Module names from ``python -X importtime`` output (``import time: self | cumulative | name``)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.slow
def test_kedro_viz_build_works_offline_without_tensorflow(project_copy):
    # An unreachable proxy makes any attempt to reach the network fail instead of silently succeeding.
    offline = {
        **os.environ,
        "KEDRO_DISABLE_TELEMETRY": "1",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "",
    }
    offline.pop("no_proxy", None)
    # -X importtime is inherited by the process kedro-viz forks to build, so its imports are logged too.
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "kedro", "viz", "build", "--include-previews"],
        cwd=project_copy,
        capture_output=True,
        text=True,
        timeout=300,
        env=offline,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]

    # Previews of datasets not written yet are left out quietly.
    assert "could not be previewed" not in result.stdout + result.stderr, result.stdout[-3000:]

    build = project_copy / "build"
    # kedro-viz reports a failed build on stdout but still exits 0: judge by the files it wrote.
    assert (build / "index.html").is_file(), result.stdout[-2000:]
    main = json.loads((build / "api" / "main").read_text())
    shown = {pipeline["id"] for pipeline in main["pipelines"]}
    assert {"__default__", "tuning", "serving"} <= shown
    for name in shown:
        layers = json.loads((build / "api" / "pipelines" / name).read_text())["layers"]
        # An empty list is kedro-viz's answer to a loop among layers.
        assert layers, f"kedro-viz shows no layers for pipeline {name}: a loop among layers"
    # The default pipeline connects every layer, so kedro-viz's order is the workflow's order (in a partial
    # pipeline, layers it does not connect come in alphabetical order).
    layers = json.loads((build / "api" / "pipelines" / "__default__").read_text())["layers"]
    assert layers == sorted(layers, key=RANK.__getitem__)
    assert {"raw", "model_input", "models", "model_output", "reporting"} <= set(layers)
    # Each pipeline is one modular pipeline, collapsed by default: the default view draws one node per pipeline
    # and the datasets between them, and no task node at its top level.
    default = json.loads((build / "api" / "pipelines" / "__default__").read_text())
    assert _top_level(default, "modularPipeline") == DEFAULT_GROUPS
    assert not _top_level(default, "task")
    tuning = json.loads((build / "api" / "pipelines" / "tuning").read_text())
    assert _top_level(tuning, "modularPipeline") == {"tuning", "tuned"}

    # Previews of the datasets that exist before any run: a table and a YAML file shown as JSON.
    previews = {}
    for node in main["nodes"]:
        if node["name"] in ("raw_customers", "release_scenarios"):
            previews[node["name"]] = json.loads((build / "api" / "nodes" / node["id"]).read_text())
    assert previews["raw_customers"]["preview_type"] == "TablePreview"
    assert len(previews["raw_customers"]["preview"]["data"]) == 10
    assert previews["release_scenarios"]["preview_type"] == "JSONPreview"

    modules = _imported_modules(result.stderr)
    assert "kedro_viz.integrations.deployment.local_deployer" in modules, "the log misses the build"
    heavy = sorted(name for name in modules if name.split(".")[0] in ("tensorflow", "keras"))
    assert not heavy, f"kedro viz build imported {heavy[:5]}"


def test_imported_modules_reads_importtime_lines():
    log = (
        "import time: self [us] | cumulative | imported package\n"
        "import time:       275 |        275 |               mlflow.data.tensorflow_dataset\n"
        "import time:      1086 |       7086 |   tensorflow\n"
        "some other line\n"
    )
    assert _imported_modules(log) == {
        "imported package",
        "mlflow.data.tensorflow_dataset",
        "tensorflow",
    }
