"""A hostile source on loopback: it answers one byte at a time, slowly.

Each byte comes well within any read timeout, so only a deadline on the whole
answer ends the request (issue 21, item 4). Real sockets, a free port.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class Drip:
    """The running server: its URL and how many requests it received."""

    url: str
    requests: int = 0
    closed_by_client: list[float] = field(default_factory=list)


def _answer() -> tuple[bytes, bytes]:
    body = json.dumps({"items": [], "total": 0, "page": 1, "size": 100, "pages": 0}).encode()
    head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head, body


@contextlib.contextmanager
def dripping_server(interval: float = 0.5, part: str = "body") -> Iterator[Drip]:
    """Serve a valid empty page envelope, one byte every ``interval`` seconds.

    Args:
        interval: Seconds between bytes.
        part: ``"headers"`` drips from the status line on; ``"body"`` sends the
            headers at once and drips the body.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    drip = Drip(url=f"http://127.0.0.1:{listener.getsockname()[1]}")
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            drip.requests += 1
            head, body = _answer()
            if part == "body":
                conn.sendall(head)
            slow = head + body if part == "headers" else body
            try:
                for i in range(len(slow)):
                    if stop.wait(interval):
                        return
                    conn.sendall(slow[i:i + 1])
            except OSError:
                drip.closed_by_client.append(time.monotonic())

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield drip
    finally:
        stop.set()
        listener.close()
