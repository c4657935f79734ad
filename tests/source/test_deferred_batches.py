"""The bulk conversion of well-formed pages equals the page-by-page one, and
anything unusual still takes the careful path (drift, type errors, re-reads)."""

from __future__ import annotations

import datetime as dt

import orjson
import pyarrow as pa
import pytest

from lakehouse.source.client import ApiClient, Page
from lakehouse.source.endpoints import ENDPOINTS
from lakehouse.source.records import infer_field
from lakehouse.source.stream import EndpointStream
from tests.source.conftest import make_tracks, make_users
from tests.source.test_ingest_source import DAY, settings

NOW = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def history() -> list[dict]:
    return [
        {"user_id": 1, "items": [1, 2, 3], "created_at": "2026-02-07T18:56:06",
         "updated_at": "2026-02-08T18:56:06"},
        {"user_id": None, "items": None, "created_at": None, "updated_at": "é😀 ünïcode"},
        {"user_id": -(2**63), "items": [], "created_at": "", "updated_at": "\u0000"},
        {"user_id": 2**63 - 1, "items": [None, 7], "created_at": "x", "updated_at": "y"},
    ]


def users() -> list[dict]:
    rows = make_users(5)
    rows[1].update(first_name="Zoë 😀", email=None, id=None)
    return rows


DATA = {"users": users(), "tracks": make_tracks(5), "listen_history": history()}


def page(items: list[dict], number: int = 1) -> Page:
    # Through JSON bytes and orjson, as the client builds items.
    body = orjson.dumps({"items": items})
    return Page(number, orjson.loads(body)["items"], 99, 9, 100, len(body), NOW)


@pytest.fixture
def stream(tmp_path, fake_api):
    api = fake_api(DATA)
    s = settings(tmp_path, api)
    clients = []

    def make(endpoint: str, extras: list[pa.Field] | None = None) -> EndpointStream:
        client = ApiClient.from_settings(s)
        clients.append(client)
        st = EndpointStream(client, ENDPOINTS[endpoint], s, extras or [], "run", DAY, set())
        st.open()
        return st

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("endpoint", ["users", "tracks", "listen_history"])
def test_well_formed_pages_are_deferred_and_convert_identically(stream, endpoint):
    st = stream(endpoint)
    pages = [page(DATA[endpoint], 1), page(DATA[endpoint][::-1], 2), page(DATA[endpoint][:1], 3)]
    checked = []
    for p in pages:
        c, anomaly = st.checker.check(p)
        assert anomaly is None and c.batch is None and c.columns is not None
        assert c.rows == len(p.items)
        checked.append(c)
    bulk = st.checker.convert(checked)
    slow = pa.concat_batches([st.checker.batch(p, complete=True) for p in pages])
    assert bulk.schema == slow.schema == st.checker.source_schema
    assert bulk.equals(slow)
    assert [f.type for f in bulk.schema] == [f.type for f in st.checker.fields]
    # The stream's first page (read through HTTP) took the bulk path too.
    assert st.first.columns is not None


def test_empty_page_has_no_rows(stream):
    st = stream("listen_history")
    c, anomaly = st.checker.check(page([]))
    assert anomaly is None and c.rows == 0


def test_unusual_pages_fall_back_and_keep_their_order(stream):
    st = stream("listen_history")
    good = page(history(), 1)
    missing = history()
    del missing[2]["created_at"]
    missing_page = page(missing, 2)
    c_good, _ = st.checker.check(good)
    c_missing, anomaly = st.checker.check(missing_page)
    # A missing field: the careful path, which reports it and fills nulls.
    assert c_missing.columns is None and c_missing.batch is not None
    assert anomaly is not None and anomaly.key[1] == ("created_at",)
    c_again, _ = st.checker.check(page(history(), 3))
    bulk = st.checker.convert([c_good, c_missing, c_again])
    slow = pa.concat_batches([st.checker.batch(good, complete=True),
                              st.checker.batch(missing_page, complete=False),
                              st.checker.batch(page(history(), 3), complete=True)])
    assert bulk.equals(slow)
    assert bulk.column(2).to_pylist()[6] is None


def test_new_field_takes_the_careful_path(stream):
    st = stream("listen_history")
    items = history()
    items[0]["mood"] = "happy"
    c, anomaly = st.checker.check(page(items))
    assert c.columns is None and c.batch is None
    assert anomaly.new_fields == {"mood": "happy"}


@pytest.mark.parametrize("field, value, message", [
    ("user_id", "7", "field 'user_id' changed type: expected integer, got string"),
    ("user_id", 1.0, "field 'user_id' changed type: expected integer, got number"),
    ("user_id", True, "field 'user_id' changed type: expected integer, got boolean"),
    ("user_id", 2**63, "field 'user_id' changed type: expected integer, got integer"),
    ("items", [1, 2.5], "field 'items' changed type: expected a list of integers"),
    ("items", "1,2", "field 'items' changed type: expected a list of integers, got string"),
    ("created_at", 5, "field 'created_at' changed type: expected string, got integer"),
])
def test_changed_type_takes_the_careful_path_and_names_the_field(stream, field, value,
                                                                  message):
    st = stream("listen_history")
    items = history()
    items[1][field] = value
    c, anomaly = st.checker.check(page(items))
    assert c.columns is None and c.batch is None
    assert anomaly is not None and anomaly.type_error is not None
    assert str(anomaly.type_error).startswith(message)


def test_streams_with_a_json_text_column_are_not_deferred(stream):
    extra = infer_field("mood", {"a": 1})  # kept as JSON text
    st = stream("listen_history", [extra])
    items = history()
    for item in items:
        item["mood"] = {"a": 1}
    c, anomaly = st.checker.check(page(items))
    assert anomaly is None and c.columns is None and c.batch is not None
    assert c.batch.column("mood").to_pylist() == ['{"a": 1}'] * len(items)


def test_the_stream_reads_nothing_until_opened(tmp_path, fake_api):
    api = fake_api(DATA)
    s = settings(tmp_path, api)
    with ApiClient.from_settings(s) as client:
        st = EndpointStream(client, ENDPOINTS["users"], s, [], "run", DAY, set())
        assert api.log == [] and st.first is None and st.expected_pages == 0
        st.open()
        assert len(api.log) == 1 and st.total == len(DATA["users"])


def test_the_drift_key_of_a_type_change_is_its_field_and_types_not_its_example(stream):
    st = stream("listen_history")
    keys = []
    for value in ("7", "8"):  # two different examples of the same change
        items = history()
        items[1]["user_id"] = value
        _, anomaly = st.checker.check(page(items))
        keys.append(anomaly.key)
        error = anomaly.type_error
        assert (error.field, error.expected, error.got) == ("user_id", "integer", "string")
    assert keys[0] == keys[1]
    assert keys[0][2] == "field 'user_id' changed type: expected integer, got string"
    assert str(error.on_page(3)).endswith(" on page 3") and str(error).startswith(keys[0][2])
