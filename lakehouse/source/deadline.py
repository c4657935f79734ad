"""The request deadline: a watchdog that ends HTTP attempts past their deadline.

A read timeout bounds each wait for bytes, not the whole answer; the source
client gives each attempt a deadline (connect to last byte). The connections
of :data:`WATCHED_POOLS` register the socket of the attempt in flight on the
calling thread (:data:`current`); one :class:`Watchdog` thread per client shuts
the sockets of attempts past their deadline down.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from typing import Any

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError


class Attempt:
    """The HTTP attempt a thread has in flight, for the deadline watchdog.

    The connection registers itself when it sends the request; the watchdog
    shuts its socket down once the deadline passes and marks it ``expired``.
    """

    __slots__ = ("conn", "expired", "sock", "token")

    def __init__(self) -> None:
        self.conn: HTTPConnection | None = None
        # The socket, kept once sent: http.client drops ``conn.sock`` as soon as an
        # answer says ``Connection: close``, while the body is still to be read from it.
        self.sock: socket.socket | None = None
        self.expired = False
        self.token: int | None = None


# The attempt of the calling thread (set by ApiClient.get_page around its GETs).
current = threading.local()


class Watchdog:
    """One thread that shuts down the sockets of attempts past their deadline.

    A timer thread per page would cost a thread start for each of thousands of
    pages; here an attempt costs a dict entry under a lock, and only attempts in
    flight are held (at most one per page thread). Deadlines all have the same
    length, so a new one is never the earliest while others wait: the thread is
    woken only when it sleeps with nothing to watch (an attempt that ended
    leaves its wake-up time in place; waking then finds nothing due).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active: dict[int, tuple[float, Attempt]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        # When the thread wakes next by itself (None: only when notified).
        self._wake_at: float | None = None

    def watch(self, attempt: Attempt, seconds: float) -> None:
        with self._cond:
            if attempt.token is not None:
                self._active.pop(attempt.token, None)
            attempt.token = next(self._tokens)
            deadline = time.monotonic() + seconds
            self._active[attempt.token] = (deadline, attempt)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lakehouse-deadline",
                                                daemon=True)
                self._thread.start()
            elif self._wake_at is None or self._wake_at > deadline:
                # Otherwise the thread wakes before this deadline anyway: sparing a
                # wake-up (a thread switch) per page, as pages follow one another.
                self._cond.notify()

    def unwatch(self, attempt: Attempt) -> None:
        with self._cond:
            if attempt.token is not None:
                self._active.pop(attempt.token, None)
                attempt.token = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._active.clear()
            self._cond.notify()

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                now = time.monotonic()
                for token, (deadline, attempt) in list(self._active.items()):
                    if deadline <= now:
                        del self._active[token]
                        attempt.token = None
                        attempt.expired = True
                        _shut(attempt.sock or getattr(attempt.conn, "sock", None))
                earliest = min((d for d, _ in self._active.values()), default=None)
                self._wake_at = earliest
                self._cond.wait(None if earliest is None else earliest - now)


def _shut(sock: socket.socket | None) -> None:
    """End the blocking reads on ``sock`` (they return as if the peer closed)."""
    if sock is None:
        return
    # socket.socket's own shutdown: an SSLSocket's would drop its SSL state under the
    # reading thread. OSError: it is closed already.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedMixin:
    """A urllib3 connection that registers with the thread's attempt as it sends."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        attempt: Attempt | None = getattr(current, "attempt", None)
        if attempt is not None:
            if attempt.expired:
                # urllib3 retried after the deadline shut the socket: do not start again.
                raise ProtocolError("the request deadline passed")
            attempt.conn, attempt.sock = self, None  # type: ignore[assignment]
            current.watchdog.watch(attempt, current.deadline)
        super().request(*args, **kwargs)  # type: ignore[misc]
        if attempt is not None:
            attempt.sock = self.sock  # type: ignore[attr-defined]


class _WatchedHTTPConnection(_WatchedMixin, HTTPConnection):
    pass


class _WatchedHTTPSConnection(_WatchedMixin, HTTPSConnection):
    pass


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}
