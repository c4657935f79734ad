"""A tiny in-process stand-in for the source API, for client and ingest tests.

It serves the contract's page envelope from in-memory lists, and a test can
script any answer (status, body, dropped connection, changing total) with a
``hook``. The bundled mock API is used by the integration tests instead.
"""

from __future__ import annotations

import base64
import http.client
import json
import math
import select
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


@dataclass
class Request:
    endpoint: str
    page: int
    size: int
    n: int  # 1-based count of requests to this (endpoint, page)
    headers: dict[str, str]
    peer: tuple = ()  # the client's (host, port): one port per connection



# A hook answers a request with None (serve normally), "reset" (drop the
# connection), "truncate" (cut the body short), "chunked" (the envelope in
# chunked transfer encoding), or (status, headers, body).
Hook = Callable[[Request], Any]


@dataclass
class FakeApi:
    data: dict[str, list[dict]]
    hook: Hook | None = None
    url: str = ""
    log: list[Request] = field(default_factory=list)
    counts: dict[tuple[str, int], int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def envelope(self, endpoint: str, page: int, size: int) -> dict:
        items = self.data[endpoint]
        return {"items": items[(page - 1) * size: page * size], "total": len(items),
                "page": page, "size": size, "pages": math.ceil(len(items) / size)}

    def hits(self, endpoint: str) -> int:
        return sum(1 for r in self.log if r.endpoint == endpoint)


class _Handler(BaseHTTPRequestHandler):
    api: FakeApi
    protocol_version = "HTTP/1.1"
    # The headers and the body go out in two writes: with Nagle's algorithm on, the body
    # waits for the client's delayed ACK of the headers (~40 ms a page on Linux). Real
    # servers (uvicorn, nginx) set TCP_NODELAY too.
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802
        api = self.api
        parts = urlsplit(self.path)
        endpoint = parts.path.strip("/")
        query = parse_qs(parts.query)
        page = int(query.get("page", ["1"])[0])
        size = int(query.get("size", ["100"])[0])
        with api.lock:
            key = (endpoint, page)
            api.counts[key] = api.counts.get(key, 0) + 1
            req = Request(endpoint, page, size, api.counts[key], dict(self.headers),
                          self.client_address)
            api.log.append(req)
        answer = api.hook(req) if api.hook else None
        if answer == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
            self.close_connection = True
            return
        if answer is None:
            if endpoint not in api.data:
                answer = (404, {}, b'{"detail":"Not Found"}')
            else:
                answer = (200, {}, json.dumps(api.envelope(endpoint, page, size)).encode())
        if answer == "chunked":
            body = json.dumps(api.envelope(endpoint, page, size)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 1000):
                piece = body[start:start + 1000]
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            return
        if answer == "truncate":
            body = json.dumps(api.envelope(endpoint, page, size)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        status, headers, body = answer
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(data: dict[str, list[dict]], hook: Hook | None = None,
          tls: tuple[Path, Path] | None = None):
    """Start a FakeApi on 127.0.0.1 (https with ``tls``: cert, key); returns (api, stop)."""
    api = FakeApi(data, hook)
    handler = type("Handler", (_Handler,), {"api": api})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        # The handshake runs in the handler's thread: a client that rejects the
        # certificate must not hold up the accept loop.
        server.socket = context.wrap_socket(server.socket, server_side=True,
                                            do_handshake_on_connect=False)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return api, stop


def make_users(n: int, start: int = 1) -> list[dict]:
    return [{"id": i, "first_name": f"F{i}", "last_name": f"L{i}", "email": f"u{i}@example.org",
             "gender": "Agender", "favorite_genres": "Rock",
             "created_at": "2026-02-07T18:56:06.369637",
             "updated_at": "2026-02-08T18:56:06.369637"} for i in range(start, start + n)]


def make_tracks(n: int) -> list[dict]:
    return [{"id": i, "name": f"song {i}", "artist": "A", "songwriters": "S",
             "duration": "03:10", "genres": "word", "album": "hope",
             "created_at": "2026-02-07T18:56:06.369637",
             "updated_at": "2026-02-01T18:56:06.369637"} for i in range(1, n + 1)]


def make_history(n: int) -> list[dict]:
    return [{"user_id": i if i % 50 else None, "items": [i, i + 1, i + 2] if i % 70 else None,
             "created_at": "2026-02-07T18:56:06.369637",
             "updated_at": "2026-02-08T18:56:06.369637"} for i in range(1, n + 1)]


def sample_data(n: int = 250) -> dict[str, list[dict]]:
    return {"users": make_users(n), "tracks": make_tracks(n), "listen_history": make_history(n)}


@pytest.fixture
def fake_api():
    """A factory: ``fake_api(data=None, hook=None)`` -> a running FakeApi."""
    stops = []

    def start(data: dict[str, list[dict]] | None = None, hook: Hook | None = None,
              tls: tuple[Path, Path] | None = None) -> FakeApi:
        api, stop = serve(sample_data() if data is None else data, hook, tls)
        stops.append(stop)
        return api

    yield start
    for stop in stops:
        stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (made by the openssl command)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    return cert, key


@dataclass
class ProxyLog:
    """What a loopback proxy saw: each request line, its headers, the client's port."""

    url: str
    requests: list[tuple[str, str, dict[str, str], int]] = field(default_factory=list)

    def auth(self) -> set[tuple[str, str] | None]:
        """The Basic credentials each request carried in Proxy-Authorization."""
        found = set()
        for _, _, headers, _ in self.requests:
            value = headers.get("Proxy-Authorization")
            found.add(tuple(base64.b64decode(value.split()[1]).decode().split(":", 1))
                      if value else None)
        return found


class _ProxyHandler(BaseHTTPRequestHandler):
    """A forwarding HTTP proxy: absolute-URL GETs relayed, CONNECT tunnelled."""

    seen: ProxyLog
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _record(self) -> None:
        self.seen.requests.append((self.command, self.path, dict(self.headers),
                                   self.client_address[1]))

    def do_GET(self) -> None:  # noqa: N802
        self._record()
        parts = urlsplit(self.path)
        upstream = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        headers = {k: v for k, v in self.headers.items()
                   if k.lower() not in ("proxy-authorization", "proxy-connection")}
        upstream.request("GET", parts.path + (f"?{parts.query}" if parts.query else ""),
                         headers=headers)
        answer = upstream.getresponse()
        body = answer.read()
        upstream.close()
        self.send_response(answer.status, answer.reason)
        for k, v in answer.getheaders():
            if k.lower() not in ("content-length", "connection", "transfer-encoding"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:  # noqa: N802
        self._record()
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        ends = [self.connection, upstream]
        try:
            while True:
                ready, _, _ = select.select(ends, [], [], 10)
                if not ready:
                    break
                for end in ready:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True


@pytest.fixture
def proxy_server():
    """A real forwarding HTTP proxy on a free loopback port; yields its ProxyLog."""
    seen = ProxyLog("")
    handler = type("Handler", (_ProxyHandler,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    # An upstream that a test ends mid-answer breaks the relay: expected, not news.
    server.handle_error = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    seen.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield seen
    server.shutdown()
    server.server_close()
