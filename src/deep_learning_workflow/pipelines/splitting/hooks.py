"""The check of :mod:`.class_sizes` before the first node of a run that splits."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from deep_learning_workflow.parameters import parse

from .class_sizes import check_split_sizes, label_counts
from .schema import SplittingParameters

MAIN_TABLE = "raw_customers"
SPLIT_NODE = "split_clean_table"


class CheckSplitSizesHook:
    """Stops a run that splits before its first node when a split would hold too few rows of a class."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict, pipeline: Any, catalog: Any) -> None:
        # short_name: the registry puts the node in the `splitting` namespace.
        if SPLIT_NODE not in {node.short_name for node in pipeline.nodes}:
            return
        params = parse(SplittingParameters, catalog.load("params:splitting"), "splitting")
        if params.on_small_table != "stop":
            return  # split_clean_table warns on the clean table itself
        target = (catalog.load("params:columns") or {}).get("target")
        inputs = pipeline.inputs()
        dataset = "clean_table" if "clean_table" in inputs else MAIN_TABLE
        if dataset not in inputs or dataset not in catalog or not target:
            return
        source = catalog.get(dataset)
        if dataset == MAIN_TABLE and getattr(source, "_filepath", None) is None:
            return  # a database source: its rows are counted by split_clean_table, not queried twice
        frame = catalog.load(dataset)
        if target not in frame.columns:
            return  # the target comes from another source (e.g. crowd labels); split_clean_table checks it
        check_split_sizes(label_counts(frame[target]), params, dataset, target)
