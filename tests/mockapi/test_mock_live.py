"""A real uvicorn server on loopback: what clients see over the wire."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from lakehouse.errors import ConfigError
from lakehouse.mockapi.data import MockConfig
from lakehouse.mockapi.testing import running_mock_api
from lakehouse.names import USERS

SMALL = {"seed": 4, "users": 200, "tracks": 300, "listens": 900}


def test_serves_switches_days_and_stops():
    with running_mock_api(**SMALL) as api:
        assert api.url.startswith("http://127.0.0.1:")
        assert api.config == MockConfig(**SMALL)
        page = requests.get(f"{api.url}/users?size=10", timeout=5).json()
        assert page["total"] == 200 and len(page["items"]) == 10
        day = api.config.end - dt.timedelta(days=20)
        answer = api.set_as_of(day)
        assert api.config.as_of == day == dt.date.fromisoformat(answer["as_of"])
        smaller = requests.get(f"{api.url}/users?size=10", timeout=5).json()["total"]
        assert smaller == answer["totals"][USERS] < 200
        url = api.url
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/users", timeout=2)


def test_set_as_of_needs_the_admin_route():
    with running_mock_api(admin=False, **SMALL) as api:
        with pytest.raises(ConfigError, match="admin"):
            api.set_as_of(api.config.start)
        assert requests.post(f"{api.url}/_mock/as-of", json={"as_of": "2026-10-02"},
                             timeout=5).status_code in (404, 405)


@pytest.mark.slow
def test_faults_over_the_wire():
    config = MockConfig(fault_rate=1.0, faults=("reset",), **SMALL)
    with running_mock_api(config) as api:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{api.url}/tracks", timeout=5)
        # The server survives the drop and keeps serving what is not faulted.
        assert requests.get(f"{api.url}/openapi.json", timeout=5).status_code == 200
    with running_mock_api(config.replace(faults=("slow",), slow_seconds=1.0)) as api:
        with pytest.raises(requests.ReadTimeout):
            requests.get(f"{api.url}/users", timeout=0.3)
        assert requests.get(f"{api.url}/users", timeout=5).status_code == 200
