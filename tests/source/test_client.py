"""The HTTP client and paginator against a tiny scripted server on loopback."""

from __future__ import annotations

import json
import logging
import time

import pytest
from urllib3.connectionpool import HTTPConnectionPool
from urllib3.util.retry import Retry

from lakehouse.errors import ConfigError
from lakehouse.source.client import USER_AGENT, ApiClient, check_base_url, redact
from lakehouse.source.errors import (
    HttpStatusError,
    NotTheApiError,
    SourceTooSlowError,
    SourceUnreachableError,
)
from lakehouse.source.paginator import iter_pages


def client(url: str, **kw) -> ApiClient:
    opts = {"max_retries": 3, "backoff_factor": 0.01, "backoff_max": 0.05,
            "connect_timeout": 1.0, "read_timeout": 2.0, **kw}
    return ApiClient(url, **opts)


def test_reads_a_page_envelope_with_user_agent_and_token(fake_api):
    api = fake_api()
    with client(api.url, token="s3cret") as c:
        page = c.get_page("/users", 2, 100)
    assert (page.number, page.total, page.pages, page.size, len(page.items)) == (2, 250, 3, 100, 100)
    assert page.items[0]["id"] == 101
    assert page.fetched_at.tzinfo is not None
    assert api.log[0].headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("lakehouse/") and "s3cret" not in repr(c)
    assert api.log[0].headers["Authorization"] == "Bearer s3cret"
    assert c.requests == 1 and c.retries == 0 and c.bytes == page.nbytes > 0


def test_token_is_not_in_the_client_repr_or_errors(fake_api):
    api = fake_api(hook=lambda r: (401, {}, b'{"detail":"Not authenticated"}'))
    with client(api.url, token="s3cret") as c, pytest.raises(HttpStatusError) as err:
        c.get_page("/users", 1)
    assert "s3cret" not in str(err.value) and "s3cret" not in repr(c)
    assert "401" in str(err.value) and "Not authenticated" in str(err.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504])
def test_retries_transient_statuses_then_succeeds(fake_api, status):
    api = fake_api(hook=lambda r: (status, {}, b'{"detail":"busy"}') if r.n <= 2 else None)
    with client(api.url) as c:
        page = c.get_page("/tracks", 1)
    assert len(page.items) == 100
    assert c.retries == 2 and c.requests == 3
    assert api.counts[("tracks", 1)] == 3


@pytest.mark.slow
def test_honours_retry_after(fake_api):
    api = fake_api(hook=lambda r: (429, {"Retry-After": "1"}, b"{}") if r.n == 1 else None)
    t0 = time.perf_counter()
    with client(api.url) as c:
        c.get_page("/users", 1)
    assert time.perf_counter() - t0 >= 0.9
    assert c.retries == 1


def test_gives_up_on_a_persistent_500_quoting_the_server(fake_api):
    api = fake_api(hook=lambda r: (500, {}, b'{"detail":"database on fire"}'))
    with client(api.url) as c, pytest.raises(HttpStatusError) as err:
        c.get_page("/users", 1)
    assert err.value.status == 500
    assert "database on fire" in str(err.value) and "after 3 retries" in str(err.value)
    assert api.counts[("users", 1)] == 4


def test_does_not_retry_other_4xx_and_quotes_fastapi_detail(fake_api):
    body = (b'{"detail":[{"type":"less_than_equal","loc":["query","size"],'
            b'"msg":"Input should be less than or equal to 100","input":"101"}]}')
    api = fake_api(hook=lambda r: (422, {}, body))
    with client(api.url) as c, pytest.raises(HttpStatusError) as err:
        c.get_page("/users", 1, 100)
    assert api.counts[("users", 1)] == 1
    assert "422" in str(err.value)
    assert "query.size: Input should be less than or equal to 100" in str(err.value)


@pytest.mark.parametrize("fault", ["reset", "truncate"])
def test_retries_dropped_connections_and_cut_bodies(fake_api, fault):
    api = fake_api(hook=lambda r: fault if r.n <= 2 else None)
    with client(api.url) as c:
        page = c.get_page("/listen_history", 3)
    assert len(page.items) == 50
    assert c.retries >= 2


def test_retries_a_body_that_is_not_an_envelope(fake_api):
    api = fake_api(hook=lambda r: (200, {}, b'{"items": [1') if r.n == 1 else None)
    with client(api.url) as c:
        assert len(c.get_page("/users", 1).items) == 100
    assert c.retries == 1


def test_html_is_not_the_api(fake_api):
    api = fake_api(hook=lambda r: (200, {"Content-Type": "text/html"}, b"<html>hello</html>"))
    with client(api.url, max_retries=1) as c, pytest.raises(NotTheApiError) as err:
        c.get_page("/users", 1)
    assert "not JSON" in str(err.value) and "--api-url" in str(err.value)
    assert "\n" not in str(err.value)


def test_json_that_is_not_an_envelope_is_not_the_api(fake_api):
    api = fake_api(hook=lambda r: (200, {}, b'{"status": "ok"}'))
    with client(api.url, max_retries=0) as c, pytest.raises(NotTheApiError, match="envelope"):
        c.get_page("/users", 1)


def test_unreachable_fails_quickly_after_bounded_retries():
    t0 = time.perf_counter()
    with client("http://127.0.0.1:9", max_retries=2) as c, \
            pytest.raises(SourceUnreachableError) as err:
        c.get_page("/users", 1)
    assert time.perf_counter() - t0 < 5
    assert "cannot reach the API at http://127.0.0.1:9" in str(err.value)


def test_read_timeout_is_retried_then_reported(fake_api):
    def slow(r):
        time.sleep(0.6)
    api = fake_api(hook=slow)
    with client(api.url, read_timeout=0.2, max_retries=1) as c, \
            pytest.raises(SourceUnreachableError, match="timed out"):
        c.get_page("/users", 1)
    assert api.counts[("users", 1)] == 2


@pytest.mark.parametrize("url", ["", "foo", "ftp://x", "http://", "http://h:port"])
def test_bad_base_url(url):
    with pytest.raises(ConfigError, match="API URL"):
        check_base_url(url)


def test_redact_hides_credentials():
    assert redact("http://bob:pw@h:8000/x") == "http://h:8000/x"
    assert redact("http://h:8000") == "http://h:8000"


def test_pages_come_in_order_with_bounded_concurrency(fake_api):
    data = {"users": [{"id": i} for i in range(1, 1001)]}
    api = fake_api(data)
    with client(api.url, pool_size=4) as c:
        pages = list(iter_pages(c, "/users", size=100, workers=4))
    assert [p.number for p in pages] == list(range(1, 11))
    assert [i["id"] for p in pages for i in p.items] == list(range(1, 1001))
    assert c.requests == 10


def test_empty_collection_is_one_page(fake_api):
    api = fake_api({"users": []})
    with client(api.url) as c:
        pages = list(iter_pages(c, "/users", size=100))
    assert len(pages) == 1 and pages[0].total == 0 and pages[0].pages == 0


def test_a_failing_page_stops_the_iteration(fake_api):
    api = fake_api({"users": [{"id": i} for i in range(500)]},
                   hook=lambda r: (400, {}, b'{"detail":"nope"}') if r.page == 3 else None)
    with client(api.url) as c, pytest.raises(HttpStatusError, match="nope"):
        list(iter_pages(c, "/users", size=100, workers=2))


def test_a_413_with_retry_after_still_fails_at_once(fake_api):
    api = fake_api(hook=lambda r: (413, {"Retry-After": "1"}, b'{"detail":"too big"}'))
    with client(api.url) as c, pytest.raises(HttpStatusError, match="413.*too big") as err:
        c.get_page("/users", 1)
    assert err.value.status == 413 and api.counts[("users", 1)] == 1 and c.retries == 0


def test_counts_every_attempt_across_urllib3_and_body_retries(fake_api):
    faults = {1: "reset", 2: (500, {}, b'{"detail":"x"}'), 3: "truncate",
              4: (200, {}, b'{"items": [1')}
    api = fake_api(hook=lambda r: faults.get(r.n))
    with client(api.url) as c:
        assert len(c.get_page("/users", 1).items) == 100
    assert api.counts[("users", 1)] == 5
    assert (c.requests, c.retries) == (5, 4)


def test_is_one_urllib3_pool_with_the_retrying_policy_on_http_and_https():
    # requests' HTTPAdapter is gone from the page path (issue 22): the pool it would
    # have picked, with the same Retry, is used directly.
    for url, port in (("http://api.example", 80), ("https://api.example", 443)):
        with client(url, pool_size=5, max_retries=4) as c:
            pool = c._pool
            assert isinstance(pool, HTTPConnectionPool)
            assert (pool.scheme, pool.host, pool.port) == (url.split(":")[0], "api.example", port)
            assert pool.pool.maxsize == 5 and pool.block is False
            retry = c._retry
            assert isinstance(retry, Retry) and retry.total == 4
            assert retry.raise_on_status is False
            assert set(retry.status_forcelist) == {429, 500, 502, 503, 504}


@pytest.fixture
def no_proxy_env(monkeypatch):
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_goes_through_the_http_proxy_of_the_environment(fake_api, no_proxy_env):
    api = fake_api()  # answers as the proxy: it reads the path of the absolute URL
    no_proxy_env.setenv("HTTP_PROXY", api.url)
    with client("http://source.example:8000", token="s3cret") as c:
        page = c.get_page("/users", 1)
    assert len(page.items) == 100
    assert api.log[0].headers["Host"] == "source.example:8000"


def test_a_dead_proxy_is_reported_and_no_proxy_bypasses_it(fake_api, no_proxy_env):
    api = fake_api()
    no_proxy_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    with client(api.url, max_retries=0) as c, \
            pytest.raises(SourceUnreachableError, match="HTTP_PROXY"):
        c.get_page("/users", 1)
    assert api.log == []
    no_proxy_env.setenv("NO_PROXY", "127.0.0.1")
    with client(api.url, max_retries=0) as c:
        assert len(c.get_page("/users", 1).items) == 100


def test_the_token_is_not_logged_even_at_debug_level(fake_api, caplog):
    caplog.set_level(logging.DEBUG)
    faults = {1: "reset", 2: (503, {}, b'{"detail":"busy"}'), 3: "truncate"}
    api = fake_api(hook=lambda r: faults.get(r.n))
    with client(api.url, token="s3cret") as c:
        c.get_page("/users", 1)
    assert api.log[-1].headers["Authorization"] == "Bearer s3cret"
    urllib3_lines = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/users?page=1&size=100" in line for line in urllib3_lines)  # it did log
    assert any("Retry" in line for line in urllib3_lines)
    assert "s3cret" not in caplog.text


def test_reads_proxies_and_the_ca_bundle_from_the_environment(no_proxy_env):
    no_proxy_env.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    no_proxy_env.setenv("REQUESTS_CA_BUNDLE", "/etc/corp/ca.pem")
    with client("https://api.example") as c:
        assert c.transport.proxy == "http://proxy.corp:3128"
        assert c.transport.verify == "/etc/corp/ca.pem"
    no_proxy_env.setenv("NO_PROXY", "api.example")
    with client("https://api.example") as c:
        assert c.transport.proxy is None


def test_the_deadline_watchdog_is_not_woken_for_every_page(fake_api):
    # Pages one after another each start a deadline later than the one the watchdog
    # already sleeps until: waking it per page cost a thread switch per page.
    api = fake_api()
    with client(api.url) as c:
        c.get_page("/users", 1)
        cond = c._watchdog._cond
        wakes: list[int] = []
        notify = cond.notify
        cond.notify = lambda *a: wakes.append(1) or notify(*a)
        for page in range(1, 21):
            assert c.get_page("/users", 1 + page % 3).number == 1 + page % 3
    assert len(wakes) <= 1, len(wakes)


def test_every_page_request_is_what_requests_would_send(fake_api):
    # Pages after the first reuse one prepared request with the page's query: same
    # headers (token included), same query, for every endpoint.
    api = fake_api()
    with client(api.url, token="s3cret") as c:
        for endpoint in ("users", "tracks", "users"):
            for page in (1, 2, 3):
                got = c.get_page(f"/{endpoint}", page, 100)
                assert got.number == page and len(got.items) == (50 if page == 3 else 100)
    first = api.log[0].headers
    assert first["Authorization"] == "Bearer s3cret" and first["User-Agent"] == USER_AGENT
    assert all(r.headers == first for r in api.log), [r.headers for r in api.log]
    assert [(r.endpoint, r.page, r.size) for r in api.log] == [
        (e, p, 100) for e in ("users", "tracks", "users") for p in (1, 2, 3)]


def test_a_cookie_the_source_sets_goes_back_with_every_later_page(fake_api):
    def hook(r):
        if r.page == 1:
            body = json.dumps(api.envelope(r.endpoint, r.page, r.size)).encode()
            return 200, {"Set-Cookie": "lb=node-2; Path=/"}, body
        return None

    api = fake_api(hook=hook)
    with client(api.url) as c:
        for page in (1, 2, 3, 2):
            c.get_page("/users", page, 100)
    assert "Cookie" not in api.log[0].headers
    assert [r.headers.get("Cookie") for r in api.log[1:]] == ["lb=node-2"] * 3


def test_an_unknown_host_names_the_host_to_fix():
    client = ApiClient("http://no-such-host.invalid:8000", max_retries=0)
    with pytest.raises(SourceUnreachableError, match="cannot resolve host 'no-such-host.invalid'"):
        client.get_page("/users", 1)


# Issue 21, item 4: one byte every 0.5 s kept a page alive past every read timeout.
@pytest.mark.slow
@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_dripping_source_fails_at_the_request_deadline_without_a_retry(part):
    from tests.drip import dripping_server

    with dripping_server(interval=0.5, part=part) as drip, \
            client(drip.url, read_timeout=2.0, request_deadline=1.5) as c:
        start = time.monotonic()
        with pytest.raises(SourceTooSlowError) as err:
            c.get_page("/users", 1)
        took = time.monotonic() - start
    # Each byte came well within the read timeout: only the deadline ended it, once.
    assert 1.4 < took < 3.0, took
    assert drip.requests == 1 and c.requests == 1
    assert str(err.value).count("\n") == 0
    assert "GET /users?page=1&size=100" in str(err.value)
    assert "within 1.5 s" in str(err.value) and "LAKEHOUSE_REQUEST_DEADLINE" in str(err.value)
    assert isinstance(err.value, SourceUnreachableError)


@pytest.mark.slow
def test_a_slow_but_complete_answer_within_the_deadline_is_read():
    from tests.drip import dripping_server

    # ~70 bytes at 10 ms each: slower than one read, well within the deadline.
    with dripping_server(interval=0.01, part="headers") as drip, \
            client(drip.url, read_timeout=2.0, request_deadline=5.0) as c:
        assert c.get_page("/users", 1).total == 0
        assert c.get_page("/users", 1).total == 0
    assert drip.requests == 2 and c.retries == 0


def test_the_request_deadline_defaults_from_the_timeouts_and_is_bounded():
    from lakehouse.config import Settings

    assert ApiClient("http://127.0.0.1:9").request_deadline == 5.0 + 2 * 30.0
    assert ApiClient("http://127.0.0.1:9", connect_timeout=1, read_timeout=2).request_deadline == 5
    settings = Settings.load(env={"LAKEHOUSE_REQUEST_DEADLINE": "90"})
    assert ApiClient.from_settings(settings).request_deadline == 90
    for bad in ("-1", "1e23", "nan"):
        with pytest.raises(ConfigError, match="LAKEHOUSE_REQUEST_DEADLINE"):
            Settings.load(env={"LAKEHOUSE_REQUEST_DEADLINE": bad})
