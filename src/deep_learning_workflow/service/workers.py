"""Several worker processes on one port (``workers: N``): Python runs one request's parsing, validation and
NumPy calls on one core at a time, so a service uses N cores only as N processes.

The parent binds the port, starts N worker processes (``spawn``: each imports and loads the bundles itself) that
accept on the same socket, and supervises them:

- SIGTERM or Ctrl-C is passed to every worker as SIGTERM, once per signal: each drains, finishes its requests and
  writes its prediction log as a single service does (a second signal skips what is left of the drain). The
  parent exits 0 when every worker did.
- Each worker loads the bundles before it takes connections: until one has, connections wait in the port's
  backlog (``/livez`` too: use a start-up probe with a long enough timeout), and a replacement worker never answers
  503 while its siblings are ready.
- A worker killed by a signal (the kernel's out-of-memory killer, an operator) is replaced; a worker that exits on
  its own with an error stops the service (exit 1): a replacement would fail the same way.
- The workers' Prometheus metrics are written to a folder of the parent's (``PROMETHEUS_MULTIPROC_DIR``, removed
  at exit), and ``/metrics`` on any worker sums them: counters and histograms over all workers, gauges as each
  declares (``dlw_model_ready`` the lowest of the live workers, drift gauges the highest).
- Workers are in a process group of their own, so a terminal's Ctrl-C reaches the parent alone; a worker whose
  parent is gone (killed with SIGKILL) stops itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import wait
from socket import socket
from typing import Any

from .metrics import MULTIPROCESS_DIR
from .settings import ServiceSettings

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def configure_logging(settings: ServiceSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def serve_workers(settings: ServiceSettings) -> int:
    """Serve with ``settings.workers`` processes until a stop signal; the exit status."""
    import uvicorn

    multiprocessing.allow_connection_pickling()  # the listening socket is handed to each worker
    listener = uvicorn.Config(None, host=settings.host, port=settings.port).bind_socket()
    metrics_dir = tempfile.mkdtemp(prefix="dlw-service-metrics-")
    os.environ[MULTIPROCESS_DIR] = metrics_dir
    signals: list[int] = []
    previous = {
        sig: signal.signal(sig, lambda sig, _frame: signals.append(sig)) for sig in STOP_SIGNALS
    }
    context = multiprocessing.get_context("spawn")

    def start() -> Any:
        worker = context.Process(
            target=run_worker,
            args=(settings.model_dump(), listener, os.getpid()),
            name="service-worker",
        )
        worker.start()
        return worker

    workers = [start() for _ in range(settings.workers)]
    logger.info(
        "Serving on http://%s:%d with %d workers (pids %s).",
        settings.host,
        listener.getsockname()[1],
        len(workers),
        ", ".join(str(w.pid) for w in workers),
    )
    stopping, failed = False, False
    try:
        while workers:
            wait([w.sentinel for w in workers], timeout=0.5)
            while signals:
                signals.pop()
                stopping = True
                _terminate(workers)
            for worker in [w for w in workers if w.exitcode is not None]:
                workers.remove(worker)
                _forget(worker.pid)
                if stopping:
                    # Ended by the SIGTERM itself: it came before the worker served (and could drain) anything.
                    failed |= worker.exitcode not in (0, -signal.SIGTERM)
                elif worker.exitcode < 0:
                    logger.warning(
                        "Worker %d was killed (%s); starting another.",
                        worker.pid,
                        signal.Signals(-worker.exitcode).name,
                    )
                    workers.append(start())
                else:
                    logger.error(
                        "Worker %d exited with status %d; stopping the service.",
                        worker.pid,
                        worker.exitcode,
                    )
                    stopping = failed = True
                    _terminate(workers)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        listener.close()
        os.environ.pop(MULTIPROCESS_DIR, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 1 if failed else 0


def _terminate(workers: list[Any]) -> None:
    """SIGTERM to every worker still running (each drains, or skips the rest of its drain on a second one)."""
    for worker in workers:
        if worker.exitcode is None:
            os.kill(worker.pid, signal.SIGTERM)


def _forget(pid: int) -> None:
    """Drop a dead worker's live gauges from the summed metrics (its counters stay: they happened)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)


def run_worker(values: dict[str, Any], listener: socket, parent: int) -> None:
    """One worker: the app and its server on the parent's socket."""
    os.setpgrp()
    settings = ServiceSettings(**values)
    configure_logging(settings)
    threading.Thread(target=_stop_without, args=(parent,), name="parent-watch", daemon=True).start()
    from .app import create_app
    from .server import build_server

    build_server(create_app(settings, load_before_serving=True), settings).run(sockets=[listener])


def _stop_without(parent: int) -> None:
    """SIGTERM this worker once its parent is gone, so no orphan keeps serving the port."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os.kill(os.getpid(), signal.SIGTERM)
