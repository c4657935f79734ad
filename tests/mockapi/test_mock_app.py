"""The mock app's contract, compared with the reference stack, and its admin route."""

from __future__ import annotations

import warnings

import pyarrow as pa
import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

from lakehouse.mockapi.app import ADMIN_AS_OF, create_app
from lakehouse.mockapi.baseline import naive_app
from lakehouse.mockapi.data import MockConfig, generate
from lakehouse.names import ENDPOINTS, LISTEN_HISTORY, TRACKS, USERS

CONFIG = MockConfig(seed=11, users=250, tracks=300, listens=1234)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(CONFIG))


@pytest.fixture(scope="module")
def reference() -> TestClient:
    return TestClient(naive_app(CONFIG))


@pytest.mark.parametrize("query", [
    "", "?page=1&size=100", "?page=2&size=37", "?page=13&size=100", "?page=500&size=3",
    "?size=1", "?page=999999",
    "?size=101", "?size=0", "?page=0", "?page=x", "?size=-5&page=-1", "?size=1.5",
])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_answers_byte_for_byte_like_the_reference_stack(client, reference, endpoint, query):
    ours, theirs = client.get(f"/{endpoint}{query}"), reference.get(f"/{endpoint}{query}")
    assert ours.status_code == theirs.status_code
    assert ours.content == theirs.content
    assert ours.headers["content-type"] == theirs.headers["content-type"]


def test_envelope_slices_the_collection_in_order(client):
    records = generate(CONFIG).records(LISTEN_HISTORY)
    body = client.get("/listen_history?page=3&size=50").json()
    assert body == {"items": records[100:150], "total": 1234, "page": 3, "size": 50,
                    "pages": 25}
    last = client.get("/listen_history?page=25&size=50").json()
    assert last["items"] == records[1200:]
    assert client.get("/users").json()["size"] == 100


def test_page_past_the_end_is_200_with_no_items(client):
    response = client.get("/tracks?page=4&size=100")
    assert response.status_code == 200
    assert response.json() == {"items": [], "total": 300, "page": 4, "size": 100, "pages": 3}


def test_bad_parameters_get_fastapis_422_body(client):
    response = client.get("/users?size=101")
    assert response.status_code == 422
    assert response.json() == {"detail": [{
        "type": "less_than_equal", "loc": ["query", "size"],
        "msg": "Input should be less than or equal to 100", "input": "101", "ctx": {"le": 100}}]}
    assert client.get("/users?page=0").json()["detail"][0]["type"] == "greater_than_equal"


def test_root_redirects_to_the_docs(client):
    response = client.get("/", follow_redirects=False)
    assert response.status_code in (302, 307)
    assert response.headers["location"] == "/docs"
    assert client.get("/docs").status_code == 200


def test_openapi_is_the_reference_one_with_nullable_listen_fields(client, reference):
    doc = client.get("/openapi.json").json()
    assert doc == reference.get("/openapi.json").json()
    assert set(doc["paths"]) == {f"/{e}" for e in ENDPOINTS}
    schemas = doc["components"]["schemas"]
    listen = schemas["ListenHistoryOut"]["properties"]
    assert {"type": "null"} in listen["user_id"]["anyOf"]
    assert {"type": "null"} in listen["items"]["anyOf"]
    assert schemas["TracksOut"]["required"] == [
        "id", "name", "artist", "songwriters", "duration", "genres", "album", "created_at",
        "updated_at"]
    assert schemas["UsersOut"]["properties"]["favorite_genres"] == {
        "type": "string", "title": "Favorite Genres"}
    params = {p["name"]: p["schema"] for p in doc["paths"]["/users"]["get"]["parameters"]}
    assert params["size"]["maximum"] == 100 and params["size"]["default"] == 100
    assert params["page"]["minimum"] == 1


def test_admin_route_is_off_unless_asked(client):
    assert client.post(ADMIN_AS_OF, json={"as_of": "2026-10-05"}).status_code in (404, 405)
    assert client.get(ADMIN_AS_OF).status_code == 404


def test_admin_route_switches_the_served_day():
    client = TestClient(create_app(CONFIG, admin=True))
    end = client.get(ADMIN_AS_OF).json()
    assert end == {"as_of": str(CONFIG.end),
                   "totals": {e: generate(CONFIG).total(e) for e in ENDPOINTS}}
    earlier = client.post(ADMIN_AS_OF, json={"as_of": "2026-10-05"})
    assert earlier.status_code == 200
    totals = earlier.json()["totals"]
    assert totals[USERS] < end["totals"][USERS]
    assert client.get("/users?size=1").json()["total"] == totals[USERS]
    expected = generate(CONFIG.replace(as_of=earlier.json()["as_of"])).records(TRACKS)[:100]
    assert client.get("/tracks").json()["items"] == expected
    bad = client.post(ADMIN_AS_OF, json={"as_of": "yesterday"})
    assert bad.status_code == 422
    assert client.get(ADMIN_AS_OF).json()["as_of"] == "2026-10-05"


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_the_mock_serves_the_raw_contract_the_lakehouse_declares(client, endpoint):
    """The mock keeps its own copy of the contract (it stands in for an external API);
    it must agree with the one ingest and the zones read, lakehouse.source.endpoints."""
    from lakehouse.mockapi.data import SCHEMAS
    from lakehouse.source.endpoints import ENDPOINTS as CONTRACT

    declared = [(f.name, f.type) for f in CONTRACT[endpoint].fields]
    assert [(f.name, f.type) for f in SCHEMAS[endpoint]] == declared
    items = client.get(f"/{endpoint}", params={"size": 100}).json()["items"]
    assert items and all(list(item) == [name for name, _ in declared] for item in items)
    json_types = {pa.string(): str, pa.int64(): int, pa.list_(pa.int64()): list}
    for name, kind in declared:
        values = [item[name] for item in items if item[name] is not None]
        assert values and all(isinstance(v, json_types[kind]) for v in values), name
