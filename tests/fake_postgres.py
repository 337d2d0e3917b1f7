"""A PostgreSQL server double that asks for a password and refuses it, like a server whose role has another password.

The test server at 127.0.0.1:5432 trusts every local connection, so it accepts any password; this double speaks just
enough of the PostgreSQL protocol (v3) for libpq to send the password and receive the server's real error, SQLSTATE
28P01 "password authentication failed for user ...".
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("client closed the connection")
        data += chunk
    return data


def _error_response(user: str) -> bytes:
    fields = [
        (b"S", b"FATAL"),
        (b"V", b"FATAL"),
        (b"C", b"28P01"),
        (b"M", f'password authentication failed for user "{user}"'.encode()),
    ]
    body = b"".join(code + value + b"\x00" for code, value in fields) + b"\x00"
    return b"E" + struct.pack("!I", len(body) + 4) + body


class PasswordRefusingServer:
    """Listens on 127.0.0.1 (an ephemeral port) until closed; every login fails with a wrong-password error.

    Attributes:
        passwords: the passwords clients sent, to prove the client really presented one.
    """

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.2)
        self.port: int = self._socket.getsockname()[1]
        self.passwords: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> PasswordRefusingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                try:
                    self._refuse(connection)
                except (ConnectionError, OSError):
                    pass

    def _refuse(self, connection: socket.socket) -> None:
        while True:
            length, code = struct.unpack("!II", _read_exactly(connection, 8))
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                connection.sendall(b"N")  # no encryption: go on in the clear
                continue
            startup = _read_exactly(connection, length - 8).split(b"\x00")
            break
        options = dict(zip(startup[0::2], startup[1::2], strict=False))
        user = options.get(b"user", b"").decode()
        connection.sendall(b"R" + struct.pack("!II", 8, 3))  # AuthenticationCleartextPassword
        kind, length = struct.unpack("!cI", _read_exactly(connection, 5))
        if kind == b"p":
            self.passwords.append(_read_exactly(connection, length - 4).rstrip(b"\x00").decode())
        connection.sendall(_error_response(user))
