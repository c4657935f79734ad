"""The client's transport: urllib3 configured once from the environment, as requests would.

Real servers on loopback: the scripted API (plain and TLS, with a certificate
made by openssl), and a forwarding HTTP proxy that records what went through it.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import shutil
import subprocess
import time

import pytest
import requests
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy

from lakehouse.source.client import ApiClient, Transport
from lakehouse.source.errors import (
    CutShortError,
    HttpStatusError,
    SourceTooSlowError,
    SourceUnreachableError,
)
from lakehouse.source.paginator import iter_pages

ENV_NAMES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "requests_ca_bundle",
             "curl_ca_bundle", "netrc")


def client(url: str, **kw) -> ApiClient:
    opts = {"max_retries": 3, "backoff_factor": 0.01, "backoff_max": 0.05,
            "connect_timeout": 1.0, "read_timeout": 2.0, **kw}
    return ApiClient(url, **opts)


@pytest.fixture
def env(monkeypatch, tmp_path):
    """A clean transport environment: no proxy, no CA bundle, an empty .netrc."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    empty = tmp_path / "empty-netrc"
    empty.write_text("")
    monkeypatch.setenv("NETRC", str(empty))
    return monkeypatch


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


# ----------------------------------------------------------------------------- proxies
def test_the_proxy_of_the_environment_carries_every_page_with_its_credentials(
        fake_api, proxy_server, env):
    api = fake_api()
    env.setenv("HTTP_PROXY", proxy_server.url.replace("http://", "http://pxuser:pxpass@"))
    with client(api.url, token="s3cret") as c:
        pages = [c.get_page("/users", n, 100) for n in (1, 2, 3)]
    assert [len(p.items) for p in pages] == [100, 100, 50]
    # Each request went to the proxy as an absolute URL, with the proxy's credentials ...
    assert [(m, path) for m, path, _, _ in proxy_server.requests] == [
        ("GET", f"{api.url}/users?page={n}&size=100") for n in (1, 2, 3)]
    assert proxy_server.auth() == {("pxuser", "pxpass")}
    assert "pxpass" not in repr(c.transport) and proxy_server.url in repr(c.transport)
    # ... over one kept-alive connection; the API got the token, not the proxy's password.
    assert len({port for *_, port in proxy_server.requests}) == 1
    assert [r.headers["Authorization"] for r in api.log] == ["Bearer s3cret"] * 3
    assert all("Proxy-Authorization" not in r.headers for r in api.log)


@pytest.mark.parametrize("variable", ["http_proxy", "ALL_PROXY", "all_proxy"])
def test_lower_case_and_all_proxy_variables_are_read(fake_api, proxy_server, env, variable):
    api = fake_api()
    env.setenv(variable, proxy_server.url)
    with client(api.url) as c:
        assert len(c.get_page("/users", 1).items) == 100
    assert len(proxy_server.requests) == 1 and len(api.log) == 1


@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "127.0.0.0/8", "localhost,127.0.0.1", "*"])
def test_no_proxy_bypasses_a_live_proxy(fake_api, proxy_server, env, no_proxy):
    api = fake_api()
    env.setenv("HTTP_PROXY", proxy_server.url)
    env.setenv("NO_PROXY", no_proxy)
    with client(api.url) as c:
        assert len(c.get_page("/users", 1).items) == 100
    assert proxy_server.requests == [] and len(api.log) == 1


def test_https_goes_through_the_proxy_in_a_tunnel_checked_with_the_ca_bundle(
        fake_api, proxy_server, env, tls_cert):
    api = fake_api(tls=tls_cert)
    env.setenv("HTTPS_PROXY", proxy_server.url)
    env.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
    with client(api.url, token="s3cret") as c:
        assert [len(c.get_page("/users", n).items) for n in (1, 2)] == [100, 100]
    port = api.url.rsplit(":", 1)[1]
    assert [(m, p) for m, p, _, _ in proxy_server.requests] == [("CONNECT", f"127.0.0.1:{port}")]
    assert [r.headers["Authorization"] for r in api.log] == ["Bearer s3cret"] * 2


@pytest.mark.parametrize("environ", [
    {"HTTPS_PROXY": "http://proxy.corp:3128"},
    {"https_proxy": "http://proxy.corp:3128", "HTTP_PROXY": "http://other:1"},
    {"ALL_PROXY": "socks5://proxy.corp:1080"},
    {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "api.example"},
    {"HTTPS_PROXY": "http://proxy.corp:3128", "no_proxy": ".example"},
    {"HTTPS_PROXY": "http://proxy.corp:3128", "NO_PROXY": "api.example:8443"},
    {"REQUESTS_CA_BUNDLE": "/etc/corp/ca.pem", "CURL_CA_BUNDLE": "/etc/curl.pem"},
    {"CURL_CA_BUNDLE": "/etc/curl.pem"},
    {"REQUESTS_CA_BUNDLE": ""},
])
@pytest.mark.parametrize("url", ["https://api.example", "https://api.example:8443/v1"])
def test_proxy_and_ca_bundle_are_what_requests_would_use(env, environ, url):
    for name, value in environ.items():
        env.setenv(name, value)
    theirs = requests.Session().merge_environment_settings(url, {}, None, None, None)
    ours = Transport.from_environment(url)
    assert ours.proxy == select_proxy(url, theirs["proxies"])
    assert ours.verify == (DEFAULT_CA_BUNDLE_PATH if theirs["verify"] is True
                           else theirs["verify"])


def _refused_before_sending(fake_api, env, variable: str, value: str) -> str:
    """The one-line error of a page asked for with ``variable=value`` set; nothing is sent."""
    api = fake_api()
    env.setenv(variable, value)
    with client(api.url) as c, pytest.raises(SourceUnreachableError) as err:
        c.get_page("/users", 1)
    assert "\n" not in str(err.value)
    assert api.log == []
    return str(err.value)


def test_a_proxy_url_without_a_host_is_one_line(fake_api, env):
    assert "HTTP_PROXY" in _refused_before_sending(fake_api, env, "HTTP_PROXY", "http://:3128")


@pytest.mark.slow
def test_the_request_deadline_also_holds_through_a_proxy(proxy_server, env):
    from tests.drip import dripping_server

    # The proxy waits for the whole dripped answer before relaying: only the
    # deadline on the client's connection to the proxy ends the page.
    env.setenv("HTTP_PROXY", proxy_server.url)
    with dripping_server(interval=0.5, part="headers") as drip, \
            client(drip.url, read_timeout=5.0, request_deadline=1.5) as c:
        start = time.monotonic()
        with pytest.raises(SourceTooSlowError, match="within 1.5 s"):
            c.get_page("/users", 1)
        assert 1.4 < time.monotonic() - start < 4.0
    assert len(proxy_server.requests) == 1 and c.requests == 1


def test_a_socks_proxy_without_pysocks_is_one_line(fake_api, env):
    try:
        import socks  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("PySocks is installed: SOCKS proxies work")
    assert "PySocks" in _refused_before_sending(fake_api, env, "ALL_PROXY",
                                                "socks5://127.0.0.1:9")


# ------------------------------------------------------------------------ CA bundle
def test_the_ca_bundle_of_the_environment_checks_the_server(fake_api, env, tls_cert, tmp_path):
    api = fake_api(tls=tls_cert)
    # certifi's bundle does not know a self-signed certificate: one line, with what to do.
    with client(api.url, max_retries=1) as c, pytest.raises(SourceUnreachableError) as err:
        c.get_page("/users", 1)
    message = str(err.value)
    assert "\n" not in message and "set REQUESTS_CA_BUNDLE to your CA bundle" in message
    assert "CERTIFICATE_VERIFY_FAILED" in message and "after 1 retries" in message
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        env.setenv(name, str(tls_cert[0]))
        with client(api.url) as c:
            assert c.get_page("/users", 2).number == 2
        env.delenv(name)
    # A folder of hashed certificates, as c_rehash makes it, works too.
    folder = tmp_path / "certs"
    folder.mkdir()
    subject_hash = subprocess.run([shutil.which("openssl"), "x509", "-hash", "-noout", "-in",
                                   str(tls_cert[0])], check=True, capture_output=True,
                                  text=True).stdout.strip()
    shutil.copy(tls_cert[0], folder / f"{subject_hash}.0")
    env.setenv("REQUESTS_CA_BUNDLE", str(folder))
    with client(api.url) as c:
        assert c.get_page("/users", 3).number == 3


def test_a_ca_bundle_path_that_does_not_exist_is_one_line_and_sends_nothing(
        fake_api, env, tls_cert, tmp_path):
    api = fake_api(tls=tls_cert)
    missing = tmp_path / "no-such-ca.pem"
    env.setenv("REQUESTS_CA_BUNDLE", str(missing))
    c = client(api.url)  # made without a request: the error comes with the first page
    with c, pytest.raises(SourceUnreachableError) as err:
        c.get_page("/users", 1)
    message = str(err.value)
    assert "\n" not in message and str(missing) in message
    assert "named by REQUESTS_CA_BUNDLE" in message and "does not exist" in message
    assert api.log == [] and c.requests == 0
    # Plain http never reads the bundle, as with requests.
    plain = fake_api()
    with client(plain.url) as c:
        assert c.get_page("/users", 1).number == 1


def test_the_ingest_command_says_which_ca_bundle_to_fix_in_one_line(fake_api, env, tls_cert,
                                                                    tmp_path):
    from click.testing import CliRunner

    from lakehouse.cli import cli

    api = fake_api(tls=tls_cert)
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest", "users",
                                      "--api-url", api.url, "--no-progress"],
                                env={"REQUESTS_CA_BUNDLE": str(tmp_path / "nope.pem")})
    assert result.exit_code == 1, result.output
    assert result.output == (
        f"Error: cannot reach the API at {api.url}: the CA bundle {tmp_path / 'nope.pem'} "
        "named by REQUESTS_CA_BUNDLE does not exist; set REQUESTS_CA_BUNDLE to your CA "
        "bundle (a PEM file or a folder of them)\n")
    assert api.log == []


def test_a_ca_bundle_that_is_not_pem_is_one_line(fake_api, env, tls_cert, tmp_path):
    api = fake_api(tls=tls_cert)
    junk = tmp_path / "ca.pem"
    junk.write_text("this is not a certificate\n")
    env.setenv("REQUESTS_CA_BUNDLE", str(junk))
    with client(api.url, max_retries=0) as c, pytest.raises(SourceUnreachableError) as err:
        c.get_page("/users", 1)
    assert "\n" not in str(err.value) and "REQUESTS_CA_BUNDLE" in str(err.value)


def test_the_environment_is_read_when_the_client_is_made_not_for_each_page(
        fake_api, env, tls_cert, monkeypatch):
    api = fake_api(tls=tls_cert)
    env.setenv("REQUESTS_CA_BUNDLE", str(tls_cert[0]))
    with client(api.url) as c:
        c.get_page("/users", 1)
        looked: list[str] = []
        for name in ("exists", "isdir", "isfile"):
            real = getattr(os.path, name)
            monkeypatch.setattr(os.path, name,
                                lambda p, real=real, name=name: looked.append(name) or real(p))
        env.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # too late to matter for this client
        for page in (1, 2, 3, 1, 2, 3):
            assert c.get_page("/users", page).number == page
    assert looked == []
    assert len(api.log) == 7


# --------------------------------------------------------------------------- .netrc
def test_netrc_credentials_are_sent_when_no_token_is_set(fake_api, env, tmp_path):
    api = fake_api()
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1\n  login alice\n  password n3trc-pass\n")
    netrc.chmod(0o600)
    env.setenv("NETRC", str(netrc))
    with client(api.url) as c:
        c.get_page("/users", 1)
        c.get_page("/users", 2)
    assert [r.headers["Authorization"] for r in api.log] == [basic("alice", "n3trc-pass")] * 2
    assert c.transport.auth_source == ".netrc"
    assert "n3trc-pass" not in repr(c.transport) and "from .netrc" in repr(c.transport)
    # A token wins over .netrc, as with requests.
    with client(api.url, token="s3cret") as c:
        c.get_page("/users", 3)
    assert api.log[-1].headers["Authorization"] == "Bearer s3cret"


def test_netrc_password_reflected_by_the_server_is_not_shown(fake_api, env, tmp_path):
    api = fake_api(hook=lambda r: (403, {}, json.dumps(
        {"detail": f"bad credentials: {r.headers['Authorization']} / n3trc-pass"}).encode()))
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login alice password n3trc-pass\n")
    netrc.chmod(0o600)
    env.setenv("NETRC", str(netrc))
    with client(api.url) as c, pytest.raises(HttpStatusError) as err:
        c.get_page("/users", 1)
    assert "n3trc-pass" not in str(err.value) and "403" in str(err.value)
    assert "YWxpY2U6bjN0cmMtcGFzcw" not in str(err.value)  # the base64 of it either


def test_credentials_in_the_url_are_sent_as_basic_auth(fake_api, env):
    api = fake_api()
    with client(api.url.replace("http://", "http://bob:pw%40x@")) as c:
        c.get_page("/users", 1)
    assert api.log[0].headers["Authorization"] == basic("bob", "pw@x")


# ---------------------------------------------------------------- retries and reuse
@pytest.mark.slow
def test_a_503_with_retry_after_waits_then_reads(fake_api, env):
    api = fake_api(hook=lambda r: (503, {"Retry-After": "1"}, b'{"detail":"busy"}')
                   if r.n == 1 else None)
    start = time.monotonic()
    with client(api.url) as c:
        assert len(c.get_page("/users", 1).items) == 100
    assert time.monotonic() - start >= 0.9
    assert (c.requests, c.retries) == (2, 1) and api.counts[("users", 1)] == 2


def test_retries_on_5xx_and_429_then_reports_the_last_with_the_count(fake_api, env):
    answers = {1: (429, {}, b'{"detail":"slow down"}'), 2: (502, {}, b"bad gateway"),
               3: (504, {}, b'{"detail":"gateway timeout"}'), 4: (500, {}, b'{"detail":"x"}')}
    api = fake_api(hook=lambda r: answers[r.n])
    with client(api.url) as c, pytest.raises(HttpStatusError) as err:
        c.get_page("/users", 1)
    assert err.value.status == 500 and "after 3 retries" in str(err.value)
    assert (c.requests, c.retries) == (4, 3) and api.counts[("users", 1)] == 4


def test_one_connection_carries_many_pages_and_survives_retried_answers(fake_api, env):
    api = fake_api(hook=lambda r: (503, {}, b'{"detail":"busy"}') if r.page == 2 and r.n == 1
                   else (404, {}, b'{"detail":"gone"}') if r.page == 9 else None)
    with client(api.url) as c:
        for n in range(1, 21):
            page = 1 + n % 3
            assert c.get_page("/users", page).number == page
        with pytest.raises(HttpStatusError, match="404"):
            c.get_page("/users", 9)
        c.get_page("/users", 1)
    assert len(api.log) == 23
    assert len({r.peer for r in api.log}) == 1


def test_page_threads_share_a_bounded_pool(fake_api, env):
    api = fake_api({"users": [{"id": i} for i in range(1, 2001)]})
    with client(api.url, pool_size=3) as c:
        for _ in range(2):
            assert len(list(iter_pages(c, "/users", size=50, workers=3))) == 40
    assert len(api.log) == 80
    assert len({r.peer for r in api.log}) <= 3


def test_a_gzip_body_is_decoded(fake_api, env):
    def hook(r):
        body = json.dumps(api.envelope(r.endpoint, r.page, r.size)).encode()
        return 200, {"Content-Encoding": "gzip"}, gzip.compress(body)

    api = fake_api(hook=hook)
    with client(api.url) as c:
        page = c.get_page("/users", 2)
    assert page.items[0]["id"] == 101 and "gzip" in api.log[0].headers["Accept-Encoding"]


def test_a_chunked_body_is_read_whole_on_a_kept_alive_connection(fake_api, env):
    api = fake_api(hook=lambda r: "chunked")
    with client(api.url) as c:
        pages = [c.get_page("/users", n) for n in (1, 2, 3)]
    assert [p.items[0]["id"] for p in pages] == [1, 101, 201]
    assert [len(p.items) for p in pages] == [100, 100, 50]
    assert c.retries == 0 and len({r.peer for r in api.log}) == 1


def test_a_corrupt_gzip_body_is_retried_then_cut_short(fake_api, env):
    api = fake_api(hook=lambda r: (200, {"Content-Encoding": "gzip"}, b"\x1f\x8bnot gzip"))
    with client(api.url, max_retries=1) as c, pytest.raises(CutShortError) as err:
        c.get_page("/users", 1)
    assert "\n" not in str(err.value) and "after 1 retries" in str(err.value)
    assert api.counts[("users", 1)] == 2
