"""Where Dask work runs: an embedded ``LocalCluster``, or the ``dask.distributed`` scheduler named in credentials.

``conf/base/credentials.yml`` leaves ``dask_scheduler.address`` empty (a ``LocalCluster`` started for the run);
put the real scheduler in the git-ignored ``conf/local/credentials.yml``::

    dask_scheduler:
      address: tcp://scheduler.example.com:8786

Before any node runs, :meth:`DaskClusterDataset.check_connection` (called by the project's connection hook) reaches
a configured scheduler and stops the run with a message naming its address (user name and password removed) when
it cannot.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from deep_learning_workflow.redaction import redact_url

# A worker that dies fails its tasks at once instead of their being retried elsewhere: a killed run stops.
LOCAL_CONFIG = {"distributed.scheduler.allowed-failures": 0}


@dataclass(frozen=True)
class DaskCluster:
    """A scheduler address, or the size of the ``LocalCluster`` to start."""

    address: str | None = None
    n_workers: int = 2
    threads_per_worker: int = 1
    connect_timeout: float = 10.0

    @property
    def shown_address(self) -> str:
        return redact_url(self.address) if self.address else "a LocalCluster"

    @contextlib.contextmanager
    def client(self) -> Iterator[Any]:
        """A ``distributed.Client`` of the scheduler, or of a ``LocalCluster`` closed on exit."""
        import dask
        from distributed import Client, LocalCluster

        if self.address:
            try:
                client = Client(self.address, timeout=self.connect_timeout)
            except (OSError, TimeoutError, ValueError) as error:
                raise DatasetError(
                    f"Cannot reach the Dask scheduler at {self.shown_address} ({type(error).__name__}); start it, "
                    "or remove dask_scheduler.address from conf/local/credentials.yml to use a LocalCluster."
                ) from None
            with client:
                yield client
            return
        with (
            dask.config.set(LOCAL_CONFIG),
            LocalCluster(
                n_workers=self.n_workers,
                threads_per_worker=self.threads_per_worker,
                processes=True,
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client


class DaskClusterDataset(AbstractDataset[None, DaskCluster]):
    """Loads a :class:`DaskCluster` (read-only).

    Args:
        credentials: ``{"address": "tcp://host:8786"}``, or an empty/None address for a ``LocalCluster``.
        n_workers: workers of the ``LocalCluster``.
        threads_per_worker: threads of each of its workers.
        connect_timeout: seconds to wait for a configured scheduler.
        metadata: free-form metadata (kedro-viz).
    """

    def __init__(
        self,
        credentials: dict[str, Any] | None = None,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        connect_timeout: float = 10.0,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        address = (credentials or {}).get("address") or None
        self._cluster = DaskCluster(address, n_workers, threads_per_worker, connect_timeout)
        self.metadata = metadata

    def load(self) -> DaskCluster:
        return self._cluster

    def save(self, data: None) -> None:
        raise DatasetError(f"{self} is read-only.")

    def _describe(self) -> dict[str, Any]:
        return {"address": self._cluster.shown_address, "n_workers": self._cluster.n_workers}

    def check_connection(self) -> None:
        """Reach the configured scheduler (nothing to check for a LocalCluster)."""
        if self._cluster.address:
            with self._cluster.client():
                pass
