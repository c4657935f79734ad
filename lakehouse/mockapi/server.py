"""Serve the mock API in the foreground (what ``lakehouse mock-api`` runs)."""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn

from lakehouse.errors import ConfigError
from lakehouse.mockapi.app import create_app
from lakehouse.mockapi.data import MockConfig
from lakehouse.mockapi.files import load_dir
from lakehouse.names import ENDPOINTS


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, or a :class:`ConfigError` saying what to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise ConfigError(f"cannot resolve host {host!r}; use an address such as 127.0.0.1") \
            from None
    family, _, _, _, address = infos[0]
    # An explicit IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets whose proto
    # says TCP, and without it every answer waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); pick another "
                          f"--port or stop what uses it") from None
    return sock


def serve(config: MockConfig, *, host: str = "127.0.0.1", port: int = 8000, admin: bool = False,
          announce: Callable[[str], None] = print, data: str | None = None) -> None:
    """Generate ``config``'s data set and serve it until interrupted.

    Args:
        config: Data set, as-of date and faults to serve.
        host: Interface to bind; loopback by default.
        port: TCP port (0 picks a free one).
        admin: Enable ``POST /_mock/as-of``.
        announce: Called once with a one-line summary when the data is ready.
        data: Serve the data set of this folder (see :mod:`lakehouse.mockapi.files`)
            instead of a generated one.
    """
    tables = load_dir(data) if data is not None else None
    sock = bind(host, port)
    try:
        app = create_app(config, admin=admin, tables=tables)
        totals = app.mock.totals()
        actual_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        counts = ", ".join(f"{totals[e]} {e}" for e in ENDPOINTS)
        extras = []
        if admin:
            extras.append("admin route POST /_mock/as-of on")
        if config.fault_rate:
            extras.append(f"faults {','.join(config.fault_kinds)} at rate {config.fault_rate:g}")
        if config.fail_endpoint:
            extras.append(f"/{config.fail_endpoint} always fails")
        origin = (f"data of {data}" if data is not None else
                  f"{config.profile}, seed {config.seed}, as of {config.effective_as_of}")
        announce(f"MooVitamix mock API ({origin}): {counts} on http://{shown}:{actual_port}"
                 + "".join(f"; {x}" for x in extras) + ". Ctrl-C stops it.")
        uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(
            sockets=[sock])
    finally:
        sock.close()
