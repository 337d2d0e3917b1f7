"""An answer's head leaves with its body in one write; a head with no body after it (HEAD, ``100 Continue``) still
leaves at the event loop's next turn, so no client waits for it."""

from __future__ import annotations

import asyncio
import http.client
import socket

from deep_learning_workflow.service.server import CoalescingTransport


class RecordingTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info {name}"


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_a_head_and_its_body_leave_in_one_write_and_a_lone_head_at_the_next_turn():
    loop = asyncio.new_event_loop()
    try:
        recording = RecordingTransport()
        transport = CoalescingTransport(recording, loop)
        transport.write(HEAD)
        assert recording.writes == []
        transport.write(b"{}")
        assert recording.writes == [HEAD + b"{}"]
        transport.write(HEAD)
        loop.run_until_complete(asyncio.sleep(0))
        assert recording.writes == [HEAD + b"{}", HEAD]
        # Bytes that are not a head go straight out; other methods are the transport's own.
        transport.write(b"0\r\n\r\n")
        assert recording.writes[-1] == b"0\r\n\r\n"
        assert transport.get_extra_info("peername") == "info peername"
        transport.write(HEAD)
        transport.close()
        assert recording.writes[-1] == HEAD and recording.closed
        loop.run_until_complete(asyncio.sleep(0))
        assert recording.writes.count(HEAD) == 2  # the turn after close sends nothing again
    finally:
        loop.close()


def test_head_requests_and_100_continue_are_answered_at_once(serve, tmp_path):
    # A bundle that does not exist: the service stays live (not ready), which is all these answers need.
    server = serve(ready=False, bundle=str(tmp_path / "missing"))
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    # /livez takes GET only: the HEAD answer is a head alone (405, no body), and it arrives.
    connection.request("HEAD", "/livez")
    response = connection.getresponse()
    assert response.status == 405 and response.read() == b""
    connection.request("GET", "/livez")  # the same keep-alive connection still works after a HEAD
    assert connection.getresponse().status == 200
    connection.close()

    body = b'{"tenure": 1}'
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(body)
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        raw.sendall(body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
            chunk = raw.recv(4096)
            if not chunk:
                break
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 503") and b'"error":"not_ready"' in answer


def test_a_late_body_is_answered_408_on_every_event_loop_the_app_runs_on():
    """Body deadlines are swept by a timer on the running loop: an app served from a second loop (a second test
    client, a restarted server in one process) gets its own sweep rather than waiting on the first loop's."""
    import asyncio

    from deep_learning_workflow.service.app import create_app
    from deep_learning_workflow.service.settings import ServiceSettings

    app = create_app(ServiceSettings(body_timeout_seconds=0.2, log_url=None), load=False)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/predict",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"10")],
    }

    async def stalled_request() -> list[dict]:
        sent: list[dict] = []

        async def receive() -> dict:
            await asyncio.Event().wait()  # the body never comes
            return {}

        async def send(message: dict) -> None:
            sent.append(message)

        await asyncio.wait_for(app.fast_predict(scope, receive, send), 5)
        return sent

    for _ in range(2):
        sent = asyncio.run(stalled_request())
        assert sent[0]["status"] == 408
        assert b"body_timeout" in sent[1]["body"]
