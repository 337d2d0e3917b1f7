"""The uvicorn server around the app: a drain period on SIGTERM, JSON for the errors uvicorn answers itself, and an
answer's head and body sent in one write.

On SIGTERM (or Ctrl-C) the service first drains: for ``drain_seconds`` it keeps serving, ``/readyz`` answers 503
(so a load balancer takes it out of rotation) and every response carries ``Connection: close`` (so keep-alive
clients reconnect elsewhere instead of finding their connection reset). Then it stops accepting connections, lets
the requests in flight finish (up to ``graceful_timeout_seconds``), writes the pending prediction log and exits 0.
A second signal skips what is left of the drain.

uvicorn writes an answer's status line and headers, then its body, as two writes: two system calls and two TCP
segments for one small JSON answer, which on a single-record request cost about a fifth of the service's time. The
connection's transport here holds the head until the body follows, in the same turn of the event loop for every
answer the service makes; a head with no body in that turn (HEAD, ``100 Continue``, a streamed answer) is sent at
the loop's next turn.
"""

from __future__ import annotations

import asyncio
import threading
from types import FrameType
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import ServiceSettings


class CoalescingTransport:
    """A connection's transport that sends a response head together with the write that follows it.

    Args:
        transport: the connection's transport (every other method is its own).
        loop: the event loop, which sends a head still held at its next turn.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data.startswith(b"HTTP/1.1 "):
            self._head = data
            self._loop.call_soon(self.flush)
            return
        self._transport.write(data)

    def flush(self) -> None:
        """Send a head still held."""
        if self._head is not None:
            head, self._head = self._head, None
            if not self._transport.is_closing():
                self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class JSONErrorProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, answering a request it cannot parse (a negative Content-Length, a broken header)
    with the service's JSON error instead of plain text, and sending each answer's head with its body."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def send_400_response(self, msg: str) -> None:
        body = orjson.dumps(
            {"error": "malformed_request", "message": f"The HTTP request is malformed: {msg}"}
        )
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain period before shutdown (see the module docstring).

    Args:
        config: uvicorn's config.
        state: the app's :class:`~deep_learning_workflow.service.app.ServiceState` (its ``draining`` flag).
        drain_seconds: how long to keep serving, not ready, after the first signal.
    """

    def __init__(self, config: uvicorn.Config, state: Any, drain_seconds: float) -> None:
        super().__init__(config)
        self.state = state
        self.drain_seconds = drain_seconds
        self._drain_timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._drain_timer is None and self.drain_seconds > 0 and self.started:
            self.state.draining = True
            # should_exit is polled by uvicorn's main loop every 0.1 s: setting it from a timer thread is safe.
            self._drain_timer = threading.Timer(self.drain_seconds, self._stop)
            self._drain_timer.daemon = True
            self._drain_timer.start()
            return
        if self._drain_timer is not None:
            self._drain_timer.cancel()
        self._stop()

    def _stop(self) -> None:
        self.should_exit = True
        # uvicorn raises the signal again once it has shut down, so the process would end "killed by SIGTERM";
        # after a graceful shutdown the service exits with status 0, as process managers expect.
        self._captured_signals.clear()


def build_server(app: Any, settings: ServiceSettings) -> DrainingServer:
    """The server for the app (``app.state.service`` is its service state)."""
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=JSONErrorProtocol,
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=settings.graceful_timeout_seconds,
        timeout_keep_alive=settings.keep_alive_seconds,
        limit_concurrency=settings.max_connections,
        lifespan="on",
    )
    return DrainingServer(config, app.state.service, settings.drain_seconds)
