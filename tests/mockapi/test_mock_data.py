"""The mock data set: contract types, determinism, simulated days, profiles and defects."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from lakehouse.errors import ConfigError
from lakehouse.mockapi import data
from lakehouse.mockapi.data import SCHEMAS, MockConfig, generate
from lakehouse.names import ENDPOINTS, GENDERS, GENRES, LISTEN_HISTORY, TRACKS, USERS

SMALL = {"users": 300, "tracks": 400, "listens": 4000}
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


def fresh(config: MockConfig) -> data.Dataset:
    """Generate without the universe cache, to prove determinism rather than memoization."""
    data._universe.cache_clear()
    return generate(config)


@pytest.fixture(scope="module")
def default_data() -> data.Dataset:
    return generate(MockConfig())


def test_tables_have_the_contract_fields_and_types(default_data):
    for endpoint in ENDPOINTS:
        table = default_data.arrow(endpoint)
        assert table.schema.equals(SCHEMAS[endpoint]), endpoint
        for column in ("created_at", "updated_at"):
            values = table.column(column).to_pylist()
            assert all(ISO.match(v) for v in values), (endpoint, column)
    assert default_data.arrow(LISTEN_HISTORY).schema.field("items").type == pa.list_(pa.int64())
    record = default_data.records(USERS)[0]
    assert list(record) == ["id", "first_name", "last_name", "email", "gender",
                            "favorite_genres", "created_at", "updated_at"]
    assert isinstance(record["id"], int)


def test_sizes_are_the_counts_at_the_end_of_the_window(default_data):
    cfg = default_data.config
    assert default_data.as_of == cfg.end == cfg.start + dt.timedelta(days=cfg.days - 1)
    assert default_data.total(USERS) == cfg.users
    assert default_data.total(TRACKS) == cfg.tracks
    assert default_data.total(LISTEN_HISTORY) == cfg.listens
    for endpoint in (USERS, TRACKS):
        ids = default_data.arrow(endpoint).column("id")
        assert pc.count_distinct(ids).as_py() == len(ids)


def test_same_arguments_give_the_same_bytes_and_the_seed_matters():
    cfg = MockConfig(seed=3, **SMALL)
    first, second = fresh(cfg), fresh(cfg)
    for endpoint in ENDPOINTS:
        assert first.arrow(endpoint).equals(second.arrow(endpoint))
    other = fresh(cfg.replace(seed=4))
    assert not other.arrow(USERS).equals(first.arrow(USERS))
    reference = MockConfig(profile="reference", seed=3, **SMALL)
    assert fresh(reference).arrow(TRACKS).equals(fresh(reference).arrow(TRACKS))


def test_faults_do_not_change_the_data():
    cfg = MockConfig(seed=3, **SMALL)
    faulty = cfg.replace(fault_rate=0.5, faults=("500",), fail_endpoint=USERS)
    assert generate(faulty).arrow(LISTEN_HISTORY).equals(fresh(cfg).arrow(LISTEN_HISTORY))


def test_next_day_grows_keeps_ids_and_updates_some_entities():
    cfg = MockConfig(seed=5, users=3000, tracks=2000, listens=20000)
    day = cfg.end - dt.timedelta(days=10)
    before = generate(cfg.replace(as_of=day))
    after = generate(cfg.replace(as_of=day + dt.timedelta(days=1)))
    for endpoint in (USERS, TRACKS):
        old = {r["id"]: r for r in before.records(endpoint)}
        new = {r["id"]: r for r in after.records(endpoint)}
        assert set(old) <= set(new), endpoint
        changed = [i for i in old if old[i] != new[i]]
        assert changed, f"no {endpoint} updated between the two days"
        for i in changed:
            assert new[i]["created_at"] == old[i]["created_at"]
            assert new[i]["updated_at"] > old[i]["updated_at"]
            assert new[i]["updated_at"][:10] == str(day + dt.timedelta(days=1))
    assert after.total(USERS) > before.total(USERS)
    assert after.total(LISTEN_HISTORY) > before.total(LISTEN_HISTORY)
    # Offset pagination is stable across days: day D is a prefix of day D+1 ...
    latest = {r["id"]: r for r in after.records(USERS)}
    assert after.records(USERS)[:before.total(USERS)] == \
        [latest[r["id"]] for r in before.records(USERS)]
    # ... and every record of D is still served on D+1, unchanged.
    key = ("user_id", "created_at")
    old_listens = {tuple(r[k] for k in key) for r in before.records(LISTEN_HISTORY)}
    new_listens = {tuple(r[k] for k in key) for r in after.records(LISTEN_HISTORY)}
    assert old_listens < new_listens


def test_nothing_served_is_from_after_the_as_of_day():
    cfg = MockConfig(seed=5, **SMALL)
    day = cfg.start + dt.timedelta(days=3)
    snap = generate(cfg.replace(as_of=day))
    limit = f"{day + dt.timedelta(days=1)}T00:00:00"
    for endpoint in ENDPOINTS:
        for column in ("created_at", "updated_at"):
            assert max(snap.arrow(endpoint).column(column).to_pylist()) < limit


def test_realistic_defects_have_their_documented_shares(default_data):
    users = default_data.arrow(USERS).to_pandas()
    tracks = default_data.arrow(TRACKS).to_pandas()
    listens = default_data.arrow(LISTEN_HISTORY).to_pandas()
    n = len(listens)
    items = listens["items"].dropna().explode()
    assert 0.002 < (~items.isin(tracks["id"])).mean() < 0.01
    known = listens["user_id"].dropna()
    assert 0.0005 < (~known.isin(users["id"])).mean() < 0.005
    as_text = listens.assign(items=listens["items"].map(
        lambda x: None if x is None else tuple(x)))
    assert 0.001 < as_text.duplicated().sum() / n < 0.006
    assert 0.0005 < listens["items"].isna().mean() < 0.005
    assert listens["user_id"].isna().sum() >= 1
    for entities in (users, tracks):
        assert 0.003 < (entities["updated_at"] < entities["created_at"]).mean() < 0.03
    assert users["email"].duplicated().any()
    lengths = listens["items"].dropna().map(len)
    assert lengths.min() >= 1 and lengths.max() <= 30 and lengths.nunique() > 10
    sessions_per_user = listens["user_id"].value_counts()
    assert sessions_per_user.median() >= 3


def test_realistic_taste_follows_the_favourite_genre(default_data):
    users = default_data.arrow(USERS).to_pandas().set_index("id")
    tracks = default_data.arrow(TRACKS).to_pandas().set_index("id")
    assert set(users["favorite_genres"]) <= set(GENRES)
    assert set(users["gender"]) <= set(GENDERS)
    primary = tracks["genres"].str.split(", ").str[0]
    assert set(primary) == set(GENRES)
    listens = default_data.arrow(LISTEN_HISTORY).to_pandas().dropna().explode("items")
    listens = listens[listens["items"].isin(tracks.index) & listens["user_id"].isin(users.index)]
    same = primary.loc[listens["items"]].to_numpy() == \
        users["favorite_genres"].loc[listens["user_id"]].to_numpy()
    assert same.mean() > 0.5
    # Zipf-like popularity: the top 10% of tracks get far more than 10% of the listens.
    counts = listens["items"].value_counts()
    assert counts.iloc[: len(tracks) // 10].sum() / counts.sum() > 0.3


def test_reference_profile_reproduces_the_reference_quirks():
    snap = generate(MockConfig(profile="reference", users=1000, tracks=1000, seed=1))
    users = snap.arrow(USERS).to_pandas()
    tracks = snap.arrow(TRACKS).to_pandas()
    listens = snap.arrow(LISTEN_HISTORY).to_pandas()
    assert len(users) == len(tracks) == len(listens) == 1000
    for ids in (users["id"], tracks["id"]):
        assert ids.is_unique and ids.between(1, 100_000).all()
    assert listens["user_id"].tolist() == users["id"].tolist()
    assert all(len(set(x)) == 5 for x in listens["items"])
    assert set(np.concatenate(listens["items"].to_numpy())) <= set(tracks["id"])
    assert not set(tracks["genres"]) & set(GENRES)
    assert tracks["name"].str.fullmatch(r"[a-z]+").all()
    for entities in (users, tracks):
        earlier = (entities["updated_at"] < entities["created_at"]).mean()
        assert 0.1 < earlier < 0.5
    assert (listens["updated_at"] >= listens["created_at"]).all()


@pytest.mark.parametrize(("fields", "message"), [
    ({"profile": "weird"}, "unknown mock profile"),
    ({"users": 0}, "users must be an integer >= 1"),
    ({"tracks": 10}, "tracks must be an integer >= 17"),
    ({"faults": ("429", "boom")}, "unknown fault kind(s) boom"),
    ({"fail_endpoint": "albums"}, "unknown endpoint 'albums'"),
    ({"fault_rate": 1.5}, "fault rate must be between 0 and 1"),
    ({"as_of": "2026-99-01"}, "is not a date"),
])
def test_bad_config_is_a_one_line_config_error(fields, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        MockConfig(**fields)


def test_config_accepts_strings_from_the_outside_world():
    cfg = MockConfig(faults="429,reset", as_of="2026-10-03", start="2026-10-01")
    assert cfg.faults == ("429", "reset")
    assert cfg.effective_as_of == dt.date(2026, 10, 3)
    assert MockConfig(fault_rate=0.1).fault_kinds == data.FAULT_KINDS
    with pytest.raises(ConfigError, match="unknown endpoint"):
        generate(MockConfig(**SMALL)).arrow("albums")
