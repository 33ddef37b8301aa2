"""A PostgreSQL server on 127.0.0.1 that refuses every password, speaking the wire protocol.

The shared test server trusts local connections, so it accepts any password; this one asks
libpq for the password and answers as PostgreSQL does when it is wrong (SQLSTATE 28P01), so
the driver raises exactly what a real server's refusal makes it raise.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

# The first word of an SSL or GSSAPI encryption request, where a startup message has its
# protocol version.
_ENCRYPTION_REQUESTS = (80877103, 80877104)
_CLEARTEXT_PASSWORD = 3


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the client went away")
        data += chunk
    return data


def _startup_packet(connection: socket.socket) -> tuple[int, bytes]:
    (length,) = struct.unpack("!I", _read_exactly(connection, 4))
    body = _read_exactly(connection, length - 4)
    (code,) = struct.unpack("!I", body[:4])
    return code, body[4:]


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _refuse(connection: socket.socket) -> None:
    code, body = _startup_packet(connection)
    while code in _ENCRYPTION_REQUESTS:
        connection.sendall(b"N")  # no encryption here; libpq goes on in plain text
        code, body = _startup_packet(connection)
    parts = body.split(b"\x00")
    params = dict(zip(parts[0::2], parts[1::2], strict=False))
    user = params.get(b"user", b"").decode()
    connection.sendall(_message(b"R", struct.pack("!I", _CLEARTEXT_PASSWORD)))
    kind = _read_exactly(connection, 1)
    (length,) = struct.unpack("!I", _read_exactly(connection, 4))
    _read_exactly(connection, length - 4)  # the password, never kept
    if kind != b"p":
        return
    fields = [
        b"SFATAL",
        b"VFATAL",
        b"C28P01",
        f'Mpassword authentication failed for user "{user}"'.encode(),
    ]
    connection.sendall(_message(b"E", b"\x00".join(fields) + b"\x00\x00"))


@contextmanager
def refusing_postgres() -> Iterator[int]:
    """The port of a server that refuses every login for a wrong password, until exit."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    port: int = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                connection, _address = listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10)
                with suppress(ConnectionError, TimeoutError, struct.error):
                    _refuse(connection)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield port
    finally:
        stop.set()
        thread.join()
        listener.close()
