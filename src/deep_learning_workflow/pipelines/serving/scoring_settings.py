"""Settings of batch scoring (``params:serving.scoring``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt

from deep_learning_workflow.parameters import Parameters


class ScoringSettings(Parameters):
    """How ``score_scoring_batch`` reads, scores and writes (``params:serving.scoring``)."""

    chunk_rows: PositiveInt = Field(
        200_000, description="Rows read, validated and scored at a time (memory grows with it)"
    )
    threads: PositiveInt | None = Field(
        None,
        description="local: threads scoring parts of a chunk at once (null: the machine's cores)",
    )
    engine: Literal["local", "dask"] = Field(
        "local",
        description="local: this process; dask: one task per chunk on a dask.distributed cluster",
    )
    drift_sample_rows: PositiveInt = Field(
        100_000, description="Rows of the seeded uniform sample the drift report compares"
    )
    seed: int = Field(0, description="Seed of the drift sample")
