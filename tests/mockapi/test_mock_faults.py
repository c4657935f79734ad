"""Faults on request: each kind, their determinism and rate, and --fail-endpoint."""

from __future__ import annotations

import json
import time
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from lakehouse.mockapi.app import create_app
from lakehouse.mockapi.data import MockConfig, generate
from lakehouse.names import LISTEN_HISTORY, TRACKS, USERS

SMALL = {"seed": 2, "users": 200, "tracks": 300, "listens": 900}


def always(kind: str, **extra) -> TestClient:
    """A client of an app where every request to an endpoint gets the ``kind`` fault."""
    return TestClient(create_app(MockConfig(fault_rate=1.0, faults=(kind,), **SMALL, **extra)))


def test_429_says_when_to_retry():
    response = always("429", retry_after=2).get("/users")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2"
    assert response.json() == {"detail": "Too Many Requests"}


@pytest.mark.parametrize("kind", ["500", "503"])
def test_server_errors(kind):
    response = always(kind).get("/tracks?page=2")
    assert response.status_code == int(kind)
    if kind == "503":
        assert response.headers["retry-after"] == "1"


def test_reset_drops_the_request():
    # Under the test client there is no socket to drop; the live test checks the real drop.
    with pytest.raises(ConnectionResetError):
        always("reset").get("/listen_history")


def test_slow_answers_correctly_but_late():
    client = always("slow", slow_seconds=0.4)
    started = time.monotonic()
    response = client.get("/users?size=5")
    assert time.monotonic() - started >= 0.4
    assert response.status_code == 200
    assert response.json()["items"] == generate(MockConfig(**SMALL)).records(USERS)[:5]


def test_truncated_is_a_complete_answer_with_broken_json():
    response = always("truncated").get("/tracks")
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len(response.content)
    assert response.content.startswith(b'{"items":[{')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)


def test_drift_changes_the_schema_in_three_ways():
    client = always("drift")
    clean = generate(MockConfig(**SMALL))
    seen = set()
    for endpoint in (USERS, TRACKS, LISTEN_HISTORY):
        expected_keys = set(clean.records(endpoint)[0])
        for page in range(1, 10):
            response = client.get(f"/{endpoint}?page={page}&size=20")
            assert response.status_code == 200
            items = response.json()["items"]
            keys = set(items[0])
            if keys > expected_keys:
                seen.add("extra")
            elif keys < expected_keys:
                seen.add("missing")
            else:
                key = "user_id" if endpoint == LISTEN_HISTORY else "id"
                assert any(isinstance(item[key], str) for item in items)
                seen.add("type")
    assert seen == {"extra", "missing", "type"}


def test_fault_schedule_is_deterministic_and_a_retry_can_succeed():
    def statuses(seed: int) -> list[int]:
        config = MockConfig(fault_rate=0.5, faults=("429", "500", "503"), **{**SMALL,
                                                                          "seed": seed})
        client = TestClient(create_app(config))
        return [client.get(f"/users?page={p % 3 + 1}").status_code for p in range(60)]

    first = statuses(2)
    assert first == statuses(2)
    assert first != statuses(3)
    assert 200 in first and set(first) - {200}
    # The same page asked again and again eventually succeeds.
    for page in (1, 2, 3):
        asked = first[page - 1::3]
        assert 200 in asked and set(asked) != {200}


@pytest.mark.slow
def test_fault_rate_is_respected():
    client = TestClient(create_app(MockConfig(fault_rate=0.2, faults=("500",), **SMALL)))
    codes = [client.get(f"/tracks?page={p}&size=1").status_code for p in range(1, 401)]
    assert 0.13 < codes.count(500) / len(codes) < 0.27
    assert set(codes) == {200, 500}


def test_default_fault_kinds_are_all_kinds():
    client = TestClient(create_app(MockConfig(fault_rate=1.0, slow_seconds=0, **SMALL)))
    kinds = set()
    for page in range(1, 80):
        try:
            response = client.get(f"/users?page={page}&size=1")
        except ConnectionResetError:
            kinds.add("reset")
            continue
        kinds.add(response.status_code)
    assert {429, 500, 503, 200, "reset"} <= kinds


def test_faults_leave_docs_and_admin_alone():
    config = MockConfig(fault_rate=1.0, faults=("500",), **SMALL)
    client = TestClient(create_app(config, admin=True))
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/_mock/as-of").status_code == 200


def test_fail_endpoint_fails_every_request_and_only_there():
    client = TestClient(create_app(MockConfig(fail_endpoint=TRACKS, **SMALL)))
    assert {client.get(f"/tracks?page={p}").status_code for p in range(1, 20)} == {500}
    assert client.get("/users").status_code == 200
    assert client.get("/listen_history").status_code == 200
