"""A live mock API for tests, notebooks and the demo: uvicorn in a background thread.

Example::

    from lakehouse.mockapi.testing import running_mock_api

    with running_mock_api(seed=7, users=300, tracks=400, listens=4000) as api:
        requests.get(f"{api.url}/users").json()
        api.set_as_of(api.config.end - datetime.timedelta(days=1))
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import requests
import uvicorn
from fastapi import FastAPI

from lakehouse.config import parse_date
from lakehouse.errors import ConfigError, SourceError
from lakehouse.mockapi.app import ADMIN_AS_OF, create_app
from lakehouse.mockapi.data import MockConfig
from lakehouse.mockapi.server import bind

log = logging.getLogger(__name__)

STARTUP_TIMEOUT = 60.0


@dataclasses.dataclass
class MockHandle:
    """A running mock API.

    Attributes:
        url: Base URL, e.g. ``http://127.0.0.1:54321``.
        config: The configuration served now (``as_of`` follows :meth:`set_as_of`).
        app: The FastAPI app (its ``mock`` state holds the served data set).
        admin: Whether the admin routes are on.
    """

    url: str
    config: MockConfig
    app: FastAPI
    admin: bool = True

    def set_as_of(self, day: dt.date | str) -> dict:
        """Serve the state of ``day`` from now on (through the admin route).

        Returns:
            The admin route's answer: ``{"as_of": ..., "totals": {endpoint: n}}``.
        """
        if not self.admin:
            raise ConfigError("this mock API runs without its admin route; start it with "
                              "admin=True to switch dates")
        day = parse_date(day, "mock as_of")
        response = requests.post(f"{self.url}{ADMIN_AS_OF}", json={"as_of": day.isoformat()},
                                 timeout=600)
        response.raise_for_status()
        self.config = self.config.replace(as_of=day)
        return response.json()


@contextmanager
def running_mock_api(config: MockConfig | None = None, *, admin: bool = True,
                     tables: dict | None = None, **config_fields) -> Iterator[MockHandle]:
    """Serve a mock API on 127.0.0.1 and a free port for the duration of a ``with`` block.

    Args:
        config: What to serve; default ``MockConfig()``.
        admin: Enable the admin route (needed by :meth:`MockHandle.set_as_of`).
        tables: Serve these items instead of generated ones (see ``create_app``).
        **config_fields: :class:`MockConfig` fields overriding ``config``'s.

    Yields:
        A :class:`MockHandle` once the server answers; the server stops on exit.
    """
    config = config or MockConfig()
    if config_fields:
        config = config.replace(**config_fields)
    app = create_app(config, admin=admin, tables=tables)
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name=f"mock-api-{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not server.started:
            if not thread.is_alive():
                raise SourceError(f"the mock API on port {port} failed to start")
            if time.monotonic() > deadline:
                raise SourceError(f"the mock API on port {port} did not start in "
                                  f"{STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.01)
        handle = MockHandle(url=f"http://127.0.0.1:{port}", config=config, app=app, admin=admin)
        log.info("mock API serving on %s", handle.url)
        yield handle
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
