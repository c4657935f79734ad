"""The HTTP client of the source API: one page per call, retried, counted.

One urllib3 connection pool for the API's origin, with urllib3's
:class:`Retry`: refused or dropped connections, timeouts and
429/500/502/503/504 answers are retried inside urllib3 with capped exponential
backoff and jitter, honouring ``Retry-After`` (capped too, so a cron run always
ends); the last error answer comes back (``raise_on_status=False``) and becomes
:class:`HttpStatusError` quoting the server's message. Other 4xx answers fail
at once.

A read timeout bounds each wait for bytes, not the whole answer: a source that
drips one byte every few seconds would keep a page (and the ingest lock) for
hours. So each HTTP attempt also has a deadline (``request_deadline``, from
connecting to the body's last byte): a watchdog thread
(:mod:`lakehouse.source.deadline`) shuts the attempt's socket down when it
passes, and the page fails at once with :class:`SourceTooSlowError` (not
retried: a source that slow will be as slow again).

The body is read after urllib3's retry logic has returned, so urllib3 cannot
retry a body cut short or a 200 whose body is not a page envelope (e.g. JSON
cut in half): :meth:`ApiClient.get_page` retries those itself, a bounded
number of times, with the same :class:`Retry` policy's ``increment`` and
``sleep``.

What users get from ``requests`` on a corporate VM is kept, and worked out
once per client, as ``requests`` would for the API's URL: the proxy
(``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, in either case; SOCKS with
PySocks), the CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else
certifi's), ``.netrc`` credentials (``NETRC``) when no token is set, cookies
the source sets, gzip bodies. ``requests`` itself is no longer on the page
path: its session re-prepared, re-merged and re-checked all of that for every
page, ~0.1 ms of CPU a page, 1.4-1.7x a bare urllib3 ``PoolManager``; now
0.84-1.0x (BENCHMARKS.md, "Ingest transport"). Its helpers still resolve the
environment, so the client and every other requests program agree.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from base64 import b64encode
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import orjson
import urllib3
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, get_cookie_header
from requests.utils import (
    DEFAULT_ACCEPT_ENCODING,
    DEFAULT_CA_BUNDLE_PATH,
    get_auth_from_url,
    get_environ_proxies,
    get_netrc_auth,
    prepend_scheme_if_needed,
    requote_uri,
    select_proxy,
)
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.exceptions import (
    DecodeError,
    HTTPError,
    MaxRetryError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry

from lakehouse import __version__
from lakehouse.config import MAX_PAGE_SIZE, check_http_url
from lakehouse.source import deadline
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
# Errors while reading a body that urllib3 handed back before reading it: those
# requests maps to ChunkedEncodingError, ContentDecodingError and ConnectionError there.
_BODY_ERRORS = (ProtocolError, DecodeError, ReadTimeoutError, SSLError, OSError)
# The environment variables that name a CA bundle, in requests' order.
_CA_BUNDLE_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


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
        attempt: deadline.Attempt | None = getattr(deadline.current, "attempt", None)
        if attempt is not None and attempt.expired:
            # Past the deadline the source is too slow, not flaky: no more tries.
            raise MaxRetryError(None, str(args[1] if len(args) > 1 else ""),  # type: ignore[arg-type]
                                ProtocolError("the request deadline passed"))
        retry = super().increment(*args, **kwargs)  # raises when the budget is spent
        if self.on_retry is not None:
            self.on_retry()
        return retry  # type: ignore[return-value]


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


@dataclass(frozen=True)
class Transport:
    """What the environment says about reaching one API origin, as requests reads it.

    Attributes:
        proxy: The proxy URL for the origin (``None``: direct), credentials included.
        verify: The CA bundle (a file or a folder) that checks the server's
            certificate, for https.
        auth: Basic credentials from ``.netrc`` or the URL, when no token is set.
        auth_source: Where ``auth`` came from (``.netrc``, ``the URL``), for messages.
    """

    proxy: str | None
    verify: str
    auth: tuple[str, str] | None
    auth_source: str = ""

    @classmethod
    def from_environment(cls, base_url: str, *, token: str | None = None) -> Transport:
        """Resolve proxies, CA bundle and credentials for ``base_url`` once.

        The same rules as ``requests.Session`` with ``trust_env`` (its own
        helpers): ``NO_PROXY`` bypasses, then the most specific of the
        ``<scheme>://<host>``, ``<scheme>``, ``all://<host>``, ``all`` proxies;
        ``REQUESTS_CA_BUNDLE``, then ``CURL_CA_BUNDLE``, then certifi's bundle;
        ``.netrc`` (or ``NETRC``), then ``user:password@`` in the URL, only
        when no token is set.
        """
        proxy = select_proxy(base_url, get_environ_proxies(base_url))
        verify = next((os.environ[name] for name in _CA_BUNDLE_VARS if os.environ.get(name)),
                      DEFAULT_CA_BUNDLE_PATH)
        auth, source = None, ""
        if not token:
            if netrc := get_netrc_auth(base_url):
                auth, source = (netrc[0], netrc[1]), ".netrc"
            elif any(url_auth := get_auth_from_url(base_url)):
                auth, source = url_auth, "the URL"
        return cls(proxy, verify, auth, source)

    def __repr__(self) -> str:
        # Credentials (the proxy's, .netrc's) never reach a log or a notebook's output.
        proxy = redact(self.proxy) if self.proxy else None
        auth = f"<redacted, from {self.auth_source}>" if self.auth else None
        return f"Transport(proxy={proxy!r}, verify={self.verify!r}, auth={auth})"


class ApiClient:
    """Reads pages of the source API; thread-safe, one instance per run.

    Proxies (``HTTP(S)_PROXY``, ``ALL_PROXY``, ``NO_PROXY``), the CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) and ``.netrc`` come from the
    environment, as for any ``requests`` program, read once when the client is
    made (see :class:`Transport`).

    Args:
        base_url: The API's base URL.
        token: Bearer token sent as ``Authorization`` (never logged).
        connect_timeout: Seconds to connect.
        read_timeout: Seconds to wait for each read.
        request_deadline: Seconds for a whole HTTP attempt, connect to last
            byte (0: :func:`default_deadline`).
        max_retries: Retries per page on transient failures.
        backoff_factor: Exponential backoff base, in seconds.
        backoff_max: Longest backoff between two tries, in seconds.
        pool_size: Connections kept open to the API (one per page thread).
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
        self._watchdog = deadline.Watchdog()
        self.max_retries = max(0, max_retries)
        self.requests = 0
        self.retries = 0
        self.bytes = 0
        self._lock = threading.Lock()
        self._retry = _CappedRetry(
            total=self.max_retries, connect=self.max_retries, read=self.max_retries,
            status=self.max_retries, other=self.max_retries, redirect=0,
            backoff_factor=backoff_factor, backoff_max=backoff_max,
            backoff_jitter=backoff_factor, status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET"}), respect_retry_after_header=True,
            raise_on_status=False, raise_on_redirect=False,
            retry_after_max=max(backoff_max, 1.0) * 6, on_retry=self._retried)
        self._timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        self.transport = Transport.from_environment(self.base_url, token=token)
        # What requests sends by default, with the session's User-Agent and Accept.
        self._headers = {"User-Agent": USER_AGENT, "Accept-Encoding": DEFAULT_ACCEPT_ENCODING,
                         "Accept": "application/json", "Connection": "keep-alive"}
        # Credentials a server could reflect into an error body: never shown.
        self._secrets: list[str] = [token] if token else []
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif self.transport.auth:
            user, password = self.transport.auth
            self._headers["Authorization"] = _basic(user, password)
            self._secrets += [part for part in (user, password) if part]
        if self.transport.proxy:
            self._secrets += [p for p in get_auth_from_url(self.transport.proxy) if p]
        self._cookies = RequestsCookieJar()
        self._has_cookies = False  # a cookie was ever set: only then is the jar consulted
        parts = urlsplit(self.base_url)
        self._origin = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
        self._targets: dict[str, str] = {}
        self._manager: urllib3.PoolManager | None = None
        # A setting no request can go out with: reported by get_page, as requests would.
        self._setup_error: str | None = None
        try:
            self._manager, self._pool, self._absolute = self._connect(
                max(1, pool_size), parts.scheme, parts.hostname or "", parts.port)
        except _SetupError as exc:
            self._setup_error = str(exc)

    def _connect(self, pool_size: int, scheme: str, host: str, port: int | None
                 ) -> tuple[urllib3.PoolManager, HTTPConnectionPool, bool]:
        """The pool manager and the one pool of the API's origin, as requests' adapter
        would pick them; and whether request targets are absolute URLs (plain http
        through an HTTP proxy)."""
        pool_kwargs: dict[str, Any] = {}
        if scheme == "https":
            # requests checks the bundle for every https request; it cannot change here.
            bundle = self.transport.verify
            if not os.path.exists(bundle):
                named = next((f"the CA bundle {bundle} named by {n}" for n in _CA_BUNDLE_VARS
                              if os.environ.get(n) == bundle), f"certifi's CA bundle {bundle}")
                raise _SetupError(f"{named} does not exist",
                                  "set REQUESTS_CA_BUNDLE to your CA bundle (a PEM file or a "
                                  "folder of them)")
            pool_kwargs["cert_reqs"] = "CERT_REQUIRED"
            pool_kwargs["ca_cert_dir" if os.path.isdir(bundle) else "ca_certs"] = bundle
        sizes = {"num_pools": pool_size, "maxsize": pool_size, "block": False}
        proxy = self.transport.proxy
        if not proxy:
            manager = urllib3.PoolManager(**sizes)
        else:
            proxy = prepend_scheme_if_needed(proxy, "http")
            if not urllib3.util.parse_url(proxy).host:
                raise _SetupError(f"the proxy URL {redact(proxy)} has no host", _PROXY_HINT)
            user, password = get_auth_from_url(proxy)
            if proxy.lower().startswith("socks"):
                try:
                    from urllib3.contrib.socks import SOCKSProxyManager
                except ImportError:
                    raise _SetupError(f"the proxy {redact(proxy)} is a SOCKS proxy, which "
                                      "needs PySocks", "pip install 'requests[socks]', or "
                                      "check ALL_PROXY/HTTPS_PROXY/NO_PROXY") from None
                manager = SOCKSProxyManager(proxy, username=user, password=password, **sizes)
            else:
                headers = {"Proxy-Authorization": _basic(user, password)} if user else {}
                manager = urllib3.proxy_from_url(proxy, proxy_headers=headers, **sizes)
        if not proxy or not proxy.lower().startswith("socks"):
            # The deadline watchdog's connections, direct and through an HTTP proxy;
            # a SOCKS proxy keeps urllib3's own (no deadline), as before.
            manager.pool_classes_by_scheme = deadline.WATCHED_POOLS
        pool = manager.connection_from_host(host, port, scheme, pool_kwargs=pool_kwargs)
        absolute = bool(proxy) and scheme == "http" and not proxy.lower().startswith("socks")
        return manager, pool, absolute

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
        if self._manager is not None:
            self._manager.clear()
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
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ProxyError):
            hint = _PROXY_HINT
        elif isinstance(reason, SSLError):
            hint = "check --api-url, or set REQUESTS_CA_BUNDLE to your CA bundle"
        return SourceUnreachableError(f"cannot reach the API at {redact(self.base_url)} "
                                      f"({_reason(exc)}) after {retries} retries; {hint}")

    def get_page(self, path: str, page: int, size: int = MAX_PAGE_SIZE) -> Page:
        """GET ``path?page=&size=`` and return the page envelope.

        Raises:
            SourceUnreachableError: No (complete) answer after the retries, or
                the environment names a CA bundle or proxy no request can use.
            HttpStatusError: An error status (at once for 4xx other than 429).
            NotTheApiError: Bodies that are not a page envelope, every try.
        """
        where = f"GET {path}?page={page}&size={size}"
        if self._setup_error is not None:
            raise SourceUnreachableError(f"cannot reach the API at {redact(self.base_url)}: "
                                         f"{self._setup_error}")
        target = self._targets.get(path)
        if target is None:
            target = self._target(path)
        # What requests makes of these params (page and size are ints: nothing to quote).
        target += f"{'&' if '?' in target else '?'}page={page}&size={size}"
        attempt = deadline.Attempt()
        deadline.current.attempt, deadline.current.watchdog = attempt, self._watchdog
        deadline.current.deadline = self.request_deadline
        try:
            return self._get_page(target, where, page, attempt)
        finally:
            self._watchdog.unwatch(attempt)
            deadline.current.attempt = None

    def _target(self, path: str) -> str:
        """The request target for ``path`` without the page query, as requests' adapter
        sends it: the path (the full URL, without credentials, to an HTTP proxy)."""
        url = requote_uri(f"{self.base_url}{path}")
        parts = urlsplit(url)
        if self._absolute:
            netloc = parts.netloc.rpartition("@")[2]
            target = parts._replace(netloc=netloc, fragment="").geturl()
        else:
            target = parts.path or "/"
            if target.startswith("//"):
                target = "/" + target.lstrip("/")
            if parts.query:
                target += f"?{parts.query}"
        if len(self._targets) < 64:
            self._targets[path] = target
        return target

    def _too_slow(self, where: str) -> SourceTooSlowError:
        return SourceTooSlowError(
            f"{where} at {redact(self.base_url)} sent no complete answer within "
            f"{self.request_deadline:g} s (it sends too slowly); check the API, or allow more "
            "with LAKEHOUSE_REQUEST_DEADLINE")

    def _get_page(self, target: str, where: str, page: int, attempt: deadline.Attempt) -> Page:
        retry: Retry = self._retry  # the body-level budget; urllib3 has its own per GET
        inner = 0  # retries urllib3 made inside the GETs of this call
        self._count(requests_=1)
        while True:
            headers = self._headers
            if self._has_cookies:
                headers = self._with_cookies(target)
            try:
                # preload_content=False: the body is read below, where its faults can be
                # retried. The arguments are those requests' HTTPAdapter.send passes.
                resp = self._pool.urlopen("GET", target, headers=headers, redirect=False,
                                          assert_same_host=False, preload_content=False,
                                          retries=self._retry, timeout=self._timeout)
            except (HTTPError, OSError) as exc:
                if attempt.expired:
                    raise self._too_slow(where) from None
                # urllib3 spent its whole budget on this GET.
                raise self._unreachable(exc, inner + self.max_retries + len(retry.history)) \
                    from None
            history = resp.retries
            inner += len(history.history) if history is not None else 0
            try:
                body = resp.read()
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
            resp.release_conn()
            if "set-cookie" in resp.headers:
                self._keep_cookies(target, resp)
            self._count(nbytes=len(body))
            status = resp.status
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

    def _url(self, target: str) -> str:
        """The full URL of a request target, for the cookie jar's domain and path rules."""
        return target if self._absolute else f"{self._origin}{target}"

    def _keep_cookies(self, target: str, resp: urllib3.BaseHTTPResponse) -> None:
        """Keep the cookies an answer sets, as a requests session does."""
        request = SimpleNamespace(url=self._url(target), headers=self._headers)
        extract_cookies_to_jar(self._cookies, request, resp)
        self._has_cookies = True

    def _with_cookies(self, target: str) -> dict[str, str]:
        """The headers with the cookies due for ``target`` (the jar applies expiry and path)."""
        cookie = get_cookie_header(self._cookies, SimpleNamespace(url=self._url(target),
                                                                  headers=self._headers))
        return {**self._headers, "Cookie": cookie} if cookie else self._headers

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


_PROXY_HINT = "check HTTP_PROXY/HTTPS_PROXY/NO_PROXY and that the proxy is up"


class _SetupError(Exception):
    """A transport setting no request can go out with: ``what`` and ``hint``."""

    def __init__(self, what: str, hint: str):
        super().__init__(f"{what}; {hint}")


def _basic(user: str, password: str | None) -> str:
    """``Basic`` credentials, encoded as requests encodes them (latin-1)."""
    pair = f"{user}:{password or ''}".encode("latin-1")
    return f"Basic {b64encode(pair).decode('ascii')}"


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

