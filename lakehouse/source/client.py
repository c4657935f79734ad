"""The HTTP client of the source API: one page per call, retried, counted.

A ``requests.Session`` whose ``HTTPAdapter`` carries urllib3's :class:`Retry`:
refused or dropped connections, timeouts and 429/500/502/503/504 answers are
retried inside urllib3 with capped exponential backoff and jitter, honouring
``Retry-After`` (capped too, so a cron run always ends); the last error answer
comes back (``raise_on_status=False``) and becomes :class:`HttpStatusError`
quoting the server's message. Other 4xx answers fail at once.

A read timeout bounds each wait for bytes, not the whole answer: a source that
drips one byte every few seconds would keep a page (and the ingest lock) for
hours. So each HTTP attempt also has a deadline (``request_deadline``, from
connecting to the body's last byte): a watchdog thread shuts the attempt's
socket down when it passes, and the page fails at once with
:class:`SourceTooSlowError` (not retried: a source that slow will be as slow
again).

requests reads the body after urllib3's retry logic has returned, so urllib3
cannot retry a body cut short or a 200 whose body is not a page envelope (e.g.
JSON cut in half): :meth:`ApiClient.get_page` retries those itself, a bounded
number of times, with the same :class:`Retry` policy's ``increment`` and
``sleep``.

Why ``requests`` rather than bare ``http.client`` connections: users run this
against a real HTTPS API from corporate VMs, where what matters is the proxy
environment (``HTTP(S)_PROXY``, ``NO_PROXY``), the CA bundle
(``REQUESTS_CA_BUNDLE``), ``.netrc`` and a thread-safe connection pool, all
handled by requests as by every other tool on the machine. The price is CPU:
on loopback, one thread, 100 records a page, a page costs ~0.7 ms of CPU here
against ~0.2 ms on keep-alive ``http.client`` connections, which lowers ingest
speed on loopback, where the client's CPU bounds it (see BENCHMARKS.md,
ingest); against a remote API the network dominates.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
import requests
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from requests.utils import get_netrc_auth
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import MaxRetryError, ProtocolError
from urllib3.util.retry import Retry

from lakehouse import __version__
from lakehouse.config import MAX_PAGE_SIZE, check_http_url
from lakehouse.source.errors import (
    CutShortError,
    HttpStatusError,
    NotTheApiError,
    SourceTooSlowError,
    SourceUnreachableError,
)
from lakehouse.source.scrub import scrub

log = logging.getLogger(__name__)


class _QuietRetries(logging.Filter):
    """Drop urllib3's per-retry warnings unless debugging: a cron log would fill
    with them under a flaky source, and the run record counts retries anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        return (record.levelno >= logging.ERROR or not record.getMessage().startswith("Retrying")
                or logging.getLogger().isEnabledFor(logging.DEBUG))


logging.getLogger("urllib3.connectionpool").addFilter(_QuietRetries())

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
USER_AGENT = f"lakehouse/{__version__} (MooVitamix ingest)"
# Errors while reading a body that urllib3 handed back before reading it.
_BODY_ERRORS = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                requests.exceptions.ContentDecodingError)


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


def default_deadline(connect_timeout: float, read_timeout: float) -> float:
    """The request deadline when none is set: a connect and two full read timeouts.

    An answer that keeps the server silent for a whole read timeout before it
    starts, then streams, still fits; one that drips does not.
    """
    return connect_timeout + 2 * read_timeout


class _CappedRetry(Retry):
    """urllib3's Retry, with ``Retry-After`` capped and every retry reported.

    ``on_retry`` is called for each retry granted, by urllib3 inside the
    adapter as well as by :meth:`ApiClient.get_page`, so the client counts every
    HTTP attempt, including those requests never sees.
    """

    # urllib3 also retries 413 with Retry-After; any 4xx but 429 must fail at once.
    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *args: Any, retry_after_max: float = 60.0,
                 on_retry: Callable[[], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.retry_after_max = retry_after_max
        self.on_retry = on_retry

    def new(self, **kw: Any) -> _CappedRetry:
        kw.setdefault("retry_after_max", self.retry_after_max)
        kw.setdefault("on_retry", self.on_retry)
        return super().new(**kw)  # type: ignore[return-value]

    def parse_retry_after(self, retry_after: str) -> float:
        return min(super().parse_retry_after(retry_after), self.retry_after_max)

    def increment(self, *args: Any, **kwargs: Any) -> _CappedRetry:
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        if attempt is not None and attempt.expired:
            # Past the deadline the source is too slow, not flaky: no more tries.
            raise MaxRetryError(None, str(args[1] if len(args) > 1 else ""),  # type: ignore[arg-type]
                                ProtocolError("the request deadline passed"))
        retry = super().increment(*args, **kwargs)  # raises when the budget is spent
        if self.on_retry is not None:
            self.on_retry()
        return retry  # type: ignore[return-value]


class _Attempt:
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
_current = threading.local()


class _Watchdog:
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
        self._active: dict[int, tuple[float, _Attempt]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False
        # When the thread wakes next by itself (None: only when notified).
        self._wake_at: float | None = None

    def watch(self, attempt: _Attempt, seconds: float) -> None:
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

    def unwatch(self, attempt: _Attempt) -> None:
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
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        if attempt is not None:
            if attempt.expired:
                # urllib3 retried after the deadline shut the socket: do not start again.
                raise ProtocolError("the request deadline passed")
            attempt.conn, attempt.sock = self, None  # type: ignore[assignment]
            _current.watchdog.watch(attempt, _current.deadline)
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


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _DeadlineAdapter(HTTPAdapter):
    """requests' adapter whose pools (direct and through an HTTP proxy) use the
    watched connections. A SOCKS proxy keeps urllib3's own (no deadline)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pool_keys: dict[tuple, tuple[dict, dict]] = {}

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def build_connection_pool_key_attributes(self, request: requests.PreparedRequest,
                                             verify: Any, cert: Any = None
                                             ) -> tuple[dict, dict]:
        # requests parses the URL and stats the CA bundle path (os.path.isdir) for every
        # request; the answer only depends on the origin, ``verify`` and ``cert``, and a
        # client keeps asking the same one, so it is worked out once per combination.
        key = (urlsplit(request.url or "")[:2], verify if isinstance(verify, bool | str | None) else repr(verify),
               cert if isinstance(cert, str | tuple | None) else repr(cert))
        found = self._pool_keys.get(key)
        if found is None:
            found = super().build_connection_pool_key_attributes(request, verify, cert)
            if len(self._pool_keys) < 64:
                self._pool_keys[key] = found
        return dict(found[0]), dict(found[1])

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


class _BearerAuth(AuthBase):
    """``Authorization: Bearer``, with a repr that does not show the token."""

    def __init__(self, token: str):
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "_BearerAuth(<redacted>)"


def check_base_url(url: str) -> str:
    """``url`` without a trailing slash, if it is an http(s) URL with a host.

    Raises:
        ConfigError: It is not.
    """
    return check_http_url(url, "api_url", secret=False)


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

    Proxies (``HTTP(S)_PROXY``, ``NO_PROXY``), the CA bundle
    (``REQUESTS_CA_BUNDLE``) and ``.netrc`` come from the environment, as for
    any ``requests`` program.

    Args:
        base_url: The API's base URL.
        token: Bearer token sent as ``Authorization`` (never logged).
        connect_timeout, read_timeout: Seconds.
        request_deadline: Seconds one HTTP attempt may take, from connecting
            to the body's last byte (0: ``connect_timeout + 2 * read_timeout``).
        max_retries: Retries per request (each of transport and body level).
        backoff_factor, backoff_max: Exponential backoff in seconds, capped;
            a ``Retry-After`` longer than 6x ``backoff_max`` is capped too, so
            a cron run always ends.
        pool_size: Connections kept open (the number of worker threads).

    Attributes:
        session: The ``requests.Session``, with the retrying adapter mounted
            for ``http://`` and ``https://``.
        requests, retries, bytes: Counters over the client's life; ``requests``
            counts every HTTP attempt, urllib3's own retries included.
    """

    def __init__(self, base_url: str, *, token: str | None = None,
                 connect_timeout: float = 5.0, read_timeout: float = 30.0,
                 request_deadline: float = 0.0, max_retries: int = 6, backoff_factor: float = 0.25,
                 backoff_max: float = 10.0, pool_size: int = 8):
        self.base_url = check_base_url(base_url)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.request_deadline = request_deadline or default_deadline(connect_timeout,
                                                                     read_timeout)
        self._watchdog = _Watchdog()
        self.max_retries = max(0, max_retries)
        self.requests = 0
        self.retries = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._prepared: dict[str, requests.PreparedRequest] = {}
        self._retry = _CappedRetry(
            total=self.max_retries, connect=self.max_retries, read=self.max_retries,
            status=self.max_retries, other=self.max_retries, redirect=0,
            backoff_factor=backoff_factor, backoff_max=backoff_max,
            backoff_jitter=backoff_factor, status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}), respect_retry_after_header=True,
            raise_on_status=False, raise_on_redirect=False,
            retry_after_max=max(backoff_max, 1.0) * 6, on_retry=self._retried)
        pool_size = max(1, pool_size)
        adapter = _DeadlineAdapter(pool_connections=pool_size, pool_maxsize=pool_size,
                                   max_retries=self._retry)
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        # Credentials a server could reflect into an error body: never shown.
        self._secrets: list[str] = [token] if token else []
        if token:
            self.session.auth = _BearerAuth(token)
        elif netrc := get_netrc_auth(self.base_url):
            self.session.auth = netrc
            self._secrets += [str(part) for part in netrc if part]
        # With trust_env, requests re-reads the proxy and CA settings of the environment
        # for every request (~0.2 ms of CPU a page, scanning os.environ twice); all of a
        # client's requests go to one host, so resolve them once, with requests' own logic.
        env = self.session.merge_environment_settings(self.base_url, {}, None, None, None)
        self.session.proxies, self.session.verify = env["proxies"], env["verify"]
        self.session.trust_env = False

    def __repr__(self) -> str:
        return f"ApiClient({redact(self.base_url)!r})"

    @classmethod
    def from_settings(cls, settings: Any) -> ApiClient:
        """A client configured by :class:`lakehouse.config.Settings`."""
        return cls(settings.api_url, token=settings.api_token,
                   connect_timeout=settings.connect_timeout,
                   read_timeout=settings.read_timeout,
                   request_deadline=settings.request_deadline, max_retries=settings.max_retries,
                   backoff_factor=settings.backoff_factor, backoff_max=settings.backoff_max,
                   pool_size=settings.workers)

    def close(self) -> None:
        """Close every connection the client opened."""
        self.session.close()
        self._watchdog.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, requests_: int = 0, retries: int = 0, nbytes: int = 0) -> None:
        with self._lock:
            self.requests += requests_
            self.retries += retries
            self.bytes += nbytes

    def _retried(self) -> None:
        # Every retry granted is followed by exactly one more HTTP attempt.
        self._count(requests_=1, retries=1)

    def note_retry(self) -> None:
        """Count a retry decided by the caller (e.g. re-reading a suspicious page)."""
        self._count(retries=1)

    def _unreachable(self, exc: BaseException, retries: int) -> SourceUnreachableError:
        hint = "check --api-url and that the API is up"
        if isinstance(exc, requests.exceptions.ProxyError):
            hint = "check HTTP_PROXY/HTTPS_PROXY/NO_PROXY and that the proxy is up"
        elif isinstance(exc, requests.exceptions.SSLError):
            hint = "check --api-url, or set REQUESTS_CA_BUNDLE to your CA bundle"
        return SourceUnreachableError(f"cannot reach the API at {redact(self.base_url)} "
                                      f"({_reason(exc)}) after {retries} retries; {hint}")

    def get_page(self, path: str, page: int, size: int = MAX_PAGE_SIZE) -> Page:
        """GET ``path?page=&size=`` and return the page envelope.

        Raises:
            SourceUnreachableError: No (complete) answer after the retries.
            HttpStatusError: An error status (at once for 4xx other than 429).
            NotTheApiError: Bodies that are not a page envelope, every try.
        """
        where = f"GET {path}?page={page}&size={size}"
        url = f"{self.base_url}{path}"
        attempt = _Attempt()
        _current.attempt, _current.watchdog = attempt, self._watchdog
        _current.deadline = self.request_deadline
        try:
            return self._get_page(url, where, page, size, attempt)
        finally:
            self._watchdog.unwatch(attempt)
            _current.attempt = None

    def _too_slow(self, where: str) -> SourceTooSlowError:
        return SourceTooSlowError(
            f"{where} at {redact(self.base_url)} sent no complete answer within "
            f"{self.request_deadline:g} s (it sends too slowly); check the API, or allow more "
            "with LAKEHOUSE_REQUEST_DEADLINE")

    def _get_page(self, url: str, where: str, page: int, size: int, attempt: _Attempt) -> Page:
        params = {"page": page, "size": size}
        timeout = (self.connect_timeout, self.read_timeout)
        retry: Retry = self._retry  # the body-level budget; urllib3 has its own per GET
        inner = 0  # retries urllib3 made inside the GETs of this call
        self._count(requests_=1)
        while True:
            try:
                # stream: the body is read below, where its faults can be retried.
                resp = self._send(url, params, timeout)
            except (requests.exceptions.ConnectionError, requests.exceptions.Timeout,
                    requests.exceptions.RetryError) as exc:
                if attempt.expired:
                    raise self._too_slow(where) from None
                # urllib3 spent its whole budget on this GET.
                raise self._unreachable(exc, inner + self.max_retries + len(retry.history)) \
                    from None
            history = getattr(resp.raw, "retries", None)
            inner += len(history.history) if history is not None else 0
            try:
                # requests' ``content`` reads in 10 KiB pieces, each a GIL hand-off among
                # the page threads; chunk_size=None reads the body as it arrives, with the
                # same error mapping (``content`` is this join).
                body = b"".join(resp.iter_content(chunk_size=None)) or b""
            except _BODY_ERRORS as exc:
                resp.close()
                if attempt.expired:
                    raise self._too_slow(where) from None
                retry = self._again(retry, where, exc, lambda n, e=exc: CutShortError(
                    f"{where} at {redact(self.base_url)}: the answer broke off before its end "
                    f"({_reason(e)}) after {n} retries; the API answers, this endpoint does "
                    "not"), inner)
                continue
            finally:
                self._watchdog.unwatch(attempt)
            if attempt.expired:
                # The deadline passed as the body ended: what arrived may be cut short.
                resp.close()
                raise self._too_slow(where)
            self._count(nbytes=len(body))
            status = resp.status_code
            if status != 200:
                message = scrub(f"{status} {resp.reason}: {_server_message(body)}",
                                self._secrets).replace("  ", " ")
                if status not in RETRY_STATUSES:
                    raise HttpStatusError(f"{where} answered {message}", status)
                # raise_on_status=False: urllib3 retried it until its budget was spent.
                raise HttpStatusError(f"{where} answered {message} (after "
                                      f"{inner + len(retry.history)} retries)", status)
            parsed = _envelope(body, page)
            if isinstance(parsed, str):
                parsed = scrub(parsed, self._secrets)
                retry = self._again(retry, where, ProtocolError(parsed), lambda n, p=parsed:
                                    NotTheApiError(f"{where} at {redact(self.base_url)}: {p} "
                                                   f"(after {n} retries); is --api-url the "
                                                   "MooVitamix API?"), inner)
                continue
            items, total, pages, size_ = parsed
            return Page(page, items, total, pages, size_, len(body), dt.datetime.now(dt.UTC))

    def _send(self, url: str, params: dict[str, int], timeout: tuple[float, float]
              ) -> requests.Response:
        """``session.get(url, params=params, stream=True)``, without re-preparing it each page.

        ``Session.request`` merges the session's headers, auth, hooks and
        cookies into a new request for every call (a fifth of the client's
        CPU per page); the result only differs by the query here, so it is
        prepared once per URL and copied with the page's query. The session's
        own path is kept once a cookie was set (it must go back with each
        request) or when the URL has a query of its own.
        """
        template = self._prepared.get(url)
        if template is None or self.session.cookies:
            if template is None and not self.session.cookies and len(self._prepared) < 16:
                template = self.session.prepare_request(requests.Request("GET", url))
                if "?" not in (template.url or ""):
                    self._prepared[url] = template
            return self.session.get(url, params=params, timeout=timeout,
                                    allow_redirects=False, stream=True)
        request = template.copy()
        # What requests' prepare_url makes of a URL without a query and these params.
        request.url = f"{template.url}?{urlencode(params)}"
        # The settings Session.request would merge in (trust_env is off: the session's).
        return self.session.send(request, timeout=timeout, allow_redirects=False, stream=True,
                                 verify=self.session.verify, proxies=self.session.proxies,
                                 cert=self.session.cert)

    def _again(self, retry: Retry, where: str, error: BaseException,
               final: Callable[[int], Exception], inner: int) -> Retry:
        """The next state of ``retry`` after a bad body, having slept; or raise ``final``.

        ``final`` gets the number of retries made in this call: urllib3's
        (``inner``) and the body-level ones.
        """
        log.debug("%s: %s; retrying", where, _reason(error))
        try:
            retry = retry.increment("GET", where, error=ProtocolError(str(error)))
        except MaxRetryError:
            raise final(inner + len(retry.history)) from None
        retry.sleep()
        return retry


def _envelope(body: bytes, page: int) -> tuple[list, int, int, int] | str:
    """The envelope's (items, total, pages, size), or what is wrong with it."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # Never quote the body: a page cut short starts with a user's record (issue 21).
        start = body.lstrip()[:1].decode("ascii", "replace")
        if not start:
            return "the body is empty"
        if start == "<":
            return "the body is not JSON (it starts with '<': an HTML or XML page?)"
        return (f"the body is not JSON (invalid at byte {exc.pos} of {len(body)}: cut short "
                "or malformed)")
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
    # The page count drives how many requests follow: a server claiming 100,000
    # pages for 1 record must not get 100,000 requests (an empty collection may say 0 or 1).
    expected = -(-total // size)
    if pages != expected and not (total == 0 and pages == 1):
        return (f"'pages' is {pages} where total {total} at size {size} makes {expected} "
                "(the contract: pages = ceil(total / size))")
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
    """A short reason from an exception chain (socket, http.client, urllib3, requests)."""
    inner: BaseException = exc
    for _ in range(8):  # chains are short; a bound in case one loops
        nxt = getattr(inner, "reason", None)
        if isinstance(nxt, BaseException):
            inner = nxt
            continue
        wrapped = [a for a in inner.args if isinstance(a, BaseException)]
        if wrapped:  # e.g. ProtocolError("Connection broken: ...", IncompleteRead(...))
            inner = wrapped[-1]
            continue
        break
    text = str(inner)
    # urllib3 wraps the useful part after the last colon of "<pool>: Failed ...".
    if "Failed to establish a new connection" in text:
        text = text.split("Failed to establish a new connection:")[-1].strip()
        text = text.split("] ", 1)[-1]
    resolve = re.search(r"Failed to resolve '([^']+)'", text)
    if resolve:  # urllib3's NameResolutionError: the host name is what to fix
        return f"cannot resolve host {resolve.group(1)!r}"
    text = re.sub(r"^\[Errno -?\d+\] ", "", text)
    if isinstance(inner, TimeoutError) or "timed out" in text.lower():
        return "timed out"
    return text[:120] or type(inner).__name__
