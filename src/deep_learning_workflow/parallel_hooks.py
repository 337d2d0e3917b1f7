"""``kedro run --runner ParallelRunner`` with the catalog's explicit in-memory datasets.

The catalog declares some intermediate results as ``type: MemoryDataset`` on purpose (so kedro-viz and readers see
that they are not written to disk). Under ``ParallelRunner`` each node runs in a worker process, and only
``SharedMemoryDataset`` (what Kedro gives an undeclared dataset there) passes data between processes: a declared
``MemoryDataset`` saved in one worker is empty in the next. :class:`ShareMemoryDatasetsHook` swaps each declared
``MemoryDataset`` the run uses for a ``SharedMemoryDataset`` when the runner is parallel; sequential and thread
runs keep them as declared (a Keras model is then passed on without a copy).
"""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset, SharedMemoryDataset


def is_parallel(runner: Any) -> bool:
    """Whether a run's ``runner`` (an object, a class or its name, as run parameters hold it) runs processes."""
    name = runner if isinstance(runner, str) else getattr(runner, "__name__", type(runner).__name__)
    return "ParallelRunner" in str(name)


class ShareMemoryDatasetsHook:
    """Under ParallelRunner, declared ``MemoryDataset`` entries the run uses become ``SharedMemoryDataset``."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline: Any, catalog: Any) -> None:
        if not is_parallel(run_params.get("runner")):
            return
        # Only results of nodes: parameters are MemoryDatasets too, already holding their values.
        for name in sorted(pipeline.all_outputs()):
            if name in catalog and type(catalog.get(name)) is MemoryDataset:
                # The runner hands the multiprocessing manager to every SharedMemoryDataset after this hook.
                catalog[name] = SharedMemoryDataset()
