"""Run the recommendation service in the foreground (what ``lakehouse serve`` does)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pyarrow as pa
import uvicorn

from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.mockapi.server import bind
from lakehouse.serve.app import create_asgi
from lakehouse.serve.service import Service

TOKEN_ENV = "LAKEHOUSE_SERVE_TOKEN"
# A token that guards a public bind must not be guessable by trying: 16 characters of
# secrets.token_urlsafe are 96 bits. On loopback the token is an extra, any length does.
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback bind without a token, or with a short one.

    Raises:
        ConfigError: ``host`` is not loopback and ``token`` is empty or
            shorter than :data:`MIN_TOKEN_LENGTH` (its value is never shown).
    """
    if is_loopback(host):
        return
    if not token:
        # Worded so that the CLI's credential scrubber has nothing to redact in it.
        raise ConfigError(f"refusing to serve on {host} without a token; set {TOKEN_ENV}, "
                          "which clients then send in their Authorization header, "
                          "or bind 127.0.0.1")
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"refusing to serve on {host} with a {len(token)}-character "
                          f"{TOKEN_ENV}: use at least {MIN_TOKEN_LENGTH} random characters, "
                          "e.g. from python -c \"import secrets; "
                          "print(secrets.token_urlsafe(24))\"")


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8080,
          access_log: bool = False, announce: Callable[[str], None] = print) -> None:
    """Serve ``settings.lake``'s recommendations until interrupted.

    Args:
        settings: The lake, ``serve_token`` and ``serve_reload_seconds``.
        host: Interface to bind; anything but loopback needs ``serve_token``.
        port: TCP port (0 picks a free one).
        access_log: Log one line per request (uvicorn's; never the token).
        announce: Called once with the URL when the service answers.

    Raises:
        ConfigError: A non-loopback ``host`` without a token, or the port is taken.
        LakeError: There is no lake at ``settings.lake``.
    """
    check_bind(host, settings.serve_token)
    # The system allocator hands freed memory back (see _release_memory); Arrow's default
    # pool keeps it, and a reload would then leave the process at its peak for good.
    pa.set_memory_pool(pa.system_memory_pool())
    service = Service(settings)
    sock = bind(host, port)
    try:
        sock.listen(1024)  # connections queue from the moment the URL is announced
        service.start()
        app = create_asgi(service, token=settings.serve_token)
        shown = f"[{host}]" if ":" in host else host
        _ok, health = service.health()
        served = (f"score_date {health['score_date']} ({health['users']} users, k={health['k']},"
                  f" table version {health['table_version']})" if health["score_date"]
                  else "nothing yet (/health answers 503 until recommendations exist)")
        announce(f"Serving recommendations of {settings.lake} on http://{shown}:"
                 f"{sock.getsockname()[1]}: {served}"
                 f"{'; bearer token required, /openapi.json included' if settings.serve_token else '; docs at /docs'}"
                 ". Ctrl-C stops it.")
        uvicorn.Server(uvicorn.Config(app, log_level="info", access_log=access_log,
                                      lifespan="off", timeout_graceful_shutdown=2)).run(
            sockets=[sock])
    finally:
        service.stop()
        sock.close()
