"""The HTTP client of the source API: one page per call, retried, counted.

Every retry decision is urllib3's :class:`Retry`: dropped or refused
connections, timeouts, bodies cut short of their Content-Length, 429 and 5xx
answers (honouring ``Retry-After``, capped) and 200s whose body is not a page
envelope (e.g. JSON cut in half) are retried with capped exponential backoff
and jitter; other 4xx answers fail at once, quoting the server's message.

Why keep-alive ``http.client`` connections (one per worker thread) under that
policy rather than a ``requests.Session`` or urllib3's pool: on loopback,
``requests`` costs ~0.85 ms of CPU per page and urllib3's pool ~0.3 ms against
~0.13 ms here, and the client's CPU (it holds the GIL), not the network, is
what bounds ingest speed on a 2-core machine shared with the API (see
BENCHMARKS.md, ingest). Connect and read timeouts, ``User-Agent`` and the
bearer token (never logged) are as they would be with ``requests``.
"""

from __future__ import annotations

import datetime as dt
import http.client
import logging
import re
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from lakehouse import __version__
from lakehouse.errors import ConfigError
from lakehouse.source.errors import (
    HttpStatusError,
    NotTheApiError,
    SourceUnreachableError,
)

log = logging.getLogger(__name__)


RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_PAGE_SIZE = 100
USER_AGENT = f"lakehouse/{__version__} (MooVitamix ingest)"


@dataclass(frozen=True)
class Page:
    """One page envelope as served, with when it arrived."""

    number: int
    items: list[dict[str, Any]]
    total: int
    pages: int
    size: int
    nbytes: int
    fetched_at: dt.datetime


class _CappedRetry(Retry):
    """urllib3's Retry, with ``Retry-After`` honoured up to a cap."""

    def __init__(self, *args: Any, retry_after_max: float = 60.0, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.retry_after_max = retry_after_max

    def new(self, **kw: Any) -> _CappedRetry:
        kw.setdefault("retry_after_max", self.retry_after_max)
        return super().new(**kw)  # type: ignore[return-value]

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.retry_after_max)


@dataclass(frozen=True)
class _Answer:
    """The part of an answer :class:`Retry` looks at (status, ``Retry-After``)."""

    status: int
    headers: Any

    def get_redirect_location(self) -> bool:
        return False


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host.

    Raises:
        ConfigError: It is not.
    """
    parts = urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad API URL {url!r}: use http(s)://host[:port], "
                          "e.g. http://127.0.0.1:8000 (--api-url or LAKEHOUSE_API_URL)")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ConfigError(f"bad API URL {url!r}: the port is not a number") from None
    return url.rstrip("/")


def redact(url: str) -> str:
    """``url`` without any user:password part, for logs and run records."""
    parts = urlsplit(url)
    if parts.username or parts.password:
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        parts = parts._replace(netloc=netloc)
    return parts.geturl()


class ApiClient:
    """Reads pages of the source API; thread-safe, one instance per run.

    Args:
        base_url: The API's base URL.
        token: Bearer token sent as ``Authorization`` (never logged).
        connect_timeout, read_timeout: Seconds.
        max_retries: Retries per request (each of transport and body level).
        backoff_factor, backoff_max: Exponential backoff in seconds, capped;
            a ``Retry-After`` longer than 6x ``backoff_max`` is capped too, so
            a cron run always ends.
        pool_size: Connections kept open (the number of worker threads).

    Attributes:
        requests, retries, bytes: Counters over the client's life.
    """

    def __init__(self, base_url: str, *, token: str | None = None,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 max_retries: int = 6, backoff_factor: float = 0.25,
                 backoff_max: float = 10.0, pool_size: int = 8):
        self.base_url = check_base_url(base_url)
        parts = urlsplit(self.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max(0, max_retries)
        self.requests = 0
        self.retries = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._local = threading.local()
        self._conns: list[http.client.HTTPConnection] = []
        self._retry = _CappedRetry(
            total=self.max_retries, connect=self.max_retries, read=self.max_retries,
            status=self.max_retries, other=self.max_retries, redirect=0,
            backoff_factor=backoff_factor, backoff_max=backoff_max,
            backoff_jitter=backoff_factor, status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}), respect_retry_after_header=True,
            retry_after_max=max(backoff_max, 1.0) * 6)
        self._headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        del pool_size  # one keep-alive connection per worker thread

    def __repr__(self) -> str:
        return f"ApiClient({redact(self.base_url)!r})"

    @classmethod
    def from_settings(cls, settings: Any) -> ApiClient:
        """A client configured by :class:`lakehouse.config.Settings`."""
        return cls(settings.api_url, token=settings.api_token,
                   connect_timeout=settings.connect_timeout,
                   read_timeout=settings.read_timeout, max_retries=settings.max_retries,
                   backoff_factor=settings.backoff_factor, backoff_max=settings.backoff_max,
                   pool_size=settings.workers)

    def close(self) -> None:
        """Close every connection the client opened."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, requests_: int = 0, retries: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests_
            self.retries += retries
            self.bytes += nbytes

    def note_retry(self) -> None:
        """Count a retry decided by the caller (e.g. re-reading a suspicious page)."""
        self._count(retries=1)

    def _connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self.connect_timeout)
        conn.connect()
        conn.sock.settimeout(self.read_timeout)
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._conns.append(conn)
        return conn

    def _fetch(self, target: str) -> tuple[int, str, Any, bytes]:
        """One GET on this thread's keep-alive connection: (status, reason, headers, body).

        Raises:
            OSError, http.client.HTTPException: No (complete) answer; the
                connection is dropped so the next try opens a fresh one.
        """
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._local.conn = self._connect()
            conn.request("GET", target, headers=self._headers)
            resp = conn.getresponse()
            body = resp.read()
        except BaseException:
            self._local.conn = None
            if conn is not None:
                conn.close()
            raise
        if resp.will_close:
            self._local.conn = None
            conn.close()
        return resp.status, resp.reason, resp.msg, body

    def _again(self, retry: Retry, target: str, final: Callable[[int], Exception], *,
               error: Exception | None = None, answer: _Answer | None = None) -> Retry:
        """The next state of ``retry`` after a failed try, having slept; or raise ``final``."""
        try:
            retry = retry.increment("GET", target, response=answer,  # type: ignore[arg-type]
                                    error=ProtocolError(str(error)) if error else None)
        except MaxRetryError:
            raise final(len(retry.history)) from None
        self._count(retries=1)
        retry.sleep(answer)  # type: ignore[arg-type]
        return retry

    def get_page(self, path: str, page: int, size: int = MAX_PAGE_SIZE) -> Page:
        """GET ``path?page=&size=`` and return the page envelope.

        Raises:
            SourceUnreachableError: No answer after the retries.
            HttpStatusError: An error status (at once for 4xx other than 429).
            NotTheApiError: Bodies that are not a page envelope, every try.
        """
        where = f"GET {path}?page={page}&size={size}"
        target = f"{self._prefix}{path}?page={page}&size={size}"
        retry: Retry = self._retry
        while True:
            self._count(requests_=1)
            try:
                status, reason, headers, body = self._fetch(target)
            except (OSError, http.client.HTTPException) as exc:
                why = _reason(exc)
                retry = self._again(retry, target, lambda n, why=why: SourceUnreachableError(
                    f"cannot reach the API at {redact(self.base_url)} ({why}) after {n} "
                    "retries; check --api-url and that the API is up"), error=exc)
                continue
            self._count(nbytes=len(body))
            if status != 200:
                message = f"{status} {reason}: {_server_message(body)}".replace("  ", " ")
                if status not in RETRY_STATUSES:
                    raise HttpStatusError(f"{where} answered {message}", status)
                retry = self._again(retry, target, lambda n, m=message, s=status: HttpStatusError(
                    f"{where} answered {m} (after {n} retries)", s),
                    answer=_Answer(status, headers))
                continue
            parsed = _envelope(body, page)
            if isinstance(parsed, str):
                retry = self._again(retry, target, lambda n, p=parsed: NotTheApiError(
                    f"{where} at {redact(self.base_url)}: {p} (after {n} retries); is "
                    "--api-url the MooVitamix API?"), error=ProtocolError(parsed))
                continue
            items, total, pages, size_ = parsed
            return Page(page, items, total, pages, size_, len(body), dt.datetime.now(dt.UTC))


def _envelope(body: bytes, page: int) -> tuple[list, int, int, int] | str:
    """The envelope's (items, total, pages, size), or what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        start = body[:40].decode("utf-8", "replace").strip()
        return f"the body is not JSON (starts {start!r})" if start else "the body is empty"
    if not isinstance(doc, dict) or "items" not in doc or "total" not in doc:
        return "the JSON is not a page envelope (items, total, page, size, pages)"
    items, total, pages, size = doc.get("items"), doc.get("total"), doc.get("pages"), \
        doc.get("size")
    if not isinstance(items, list) or not all(type(i) is dict for i in items):
        return "'items' is not a list of objects"
    if type(total) is not int or total < 0:
        return f"'total' is not a count: {total!r}"
    if type(size) is not int or size < 1:
        return f"'size' is not a page size: {size!r}"
    if type(pages) is not int or pages < 0:
        return f"'pages' is not a count: {pages!r}"
    if doc.get("page", page) != page:
        return f"asked for page {page}, got page {doc.get('page')!r}"
    if len(items) > size:
        return f"{len(items)} items on a page of size {size}"
    return items, total, pages, size


def _server_message(body: bytes) -> str:
    """The server's error message, short: FastAPI's ``detail`` if there is one."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        return text or "(empty body)"
    detail = doc.get("detail", doc) if isinstance(doc, dict) else doc
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = ".".join(str(p) for p in first.get("loc", []))
        return f"{loc}: {first.get('msg', first)}" if loc else str(first.get("msg", first))
    text = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    return text[:200]


def _reason(exc: BaseException) -> str:
    """A short reason from an exception chain (socket, http.client, urllib3)."""
    inner: BaseException = exc
    while True:
        nxt = getattr(inner, "reason", None)
        if isinstance(nxt, BaseException):
            inner = nxt
            continue
        if inner.args and isinstance(inner.args[0], BaseException):
            inner = inner.args[0]
            continue
        break
    text = str(inner)
    # urllib3 wraps the useful part after the last colon of "<pool>: Failed ...".
    if "Failed to establish a new connection" in text:
        text = text.split("Failed to establish a new connection:")[-1].strip()
        text = text.split("] ", 1)[-1]
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    if isinstance(inner, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return text[:120] or type(inner).__name__
