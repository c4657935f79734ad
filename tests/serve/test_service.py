"""The store, the reload rules and the bind check, without a server."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.errors import ConfigError, KLimitError, NothingToServeError
from lakehouse.lake import Lake
from lakehouse.serve.server import check_bind, is_loopback
from lakehouse.serve.service import Service
from lakehouse.serve.store import to_store
from tests.conftest import copy_lake

DAY = dt.date(2026, 10, 30)


# Session, not module, scope: cheap to load, so each test worker may load its own, and the
# module's tests are not one xdist group (tests/conftest.py groups a module fixture's
# users). As a group they were the second worker's first work and waited there, idle,
# for the first worker to build the session lakes.
@pytest.fixture(scope="session")
def loaded(trained_lake) -> Service:
    """A service over the trained sample lake, loaded once (no background threads)."""
    service = Service(trained_lake)
    service.refresh()
    return service


def tiny_partition() -> pa.Table:
    # Deliberately out of order, two model versions, one extra column.
    return pa.table({
        names.USER_ID: pa.array([7, 3, 7, 3, 9], pa.int64()),
        "rank": pa.array([2, 1, 1, 2, 1], pa.int64()),
        names.TRACK_ID: pa.array([70, 30, 71, 31, 90], pa.int64()),
        "score": pa.array([0.5, 0.9, 0.8, 0.1, 0.3], pa.float32()),
        "model_version": pa.array(["v0002", "v0001", "v0002", "v0001", "v0002"]),
        "route": pa.array(["warm", "cold", "warm", "cold", "warm"]),
    })


def test_the_store_sorts_by_user_then_rank_and_passes_extra_columns():
    store = to_store(tiny_partition().column, ["route"], DAY, 4)
    assert store.user_ids.tolist() == [3, 7, 9] and store.offsets.tolist() == [0, 2, 4, 5]
    assert store.k == 2 and store.users == 3 and store.rows == 5
    assert store.find(7) == 1 and store.find(5) is None and store.find(10) is None
    assert store.items(store.find(7), 10) == [
        {"rank": 1, "track_id": 71, "score": pytest.approx(0.8), "route": "warm"},
        {"rank": 2, "track_id": 70, "score": pytest.approx(0.5), "route": "warm"}]
    assert store.items(store.find(3), 1)[0]["track_id"] == 30
    assert store.model_version(store.find(3)) == "v0001"
    assert store.model_version(store.find(9)) == "v0002"
    ordered = tiny_partition().sort_by([(names.USER_ID, "ascending"), ("rank", "ascending")])
    assert to_store(ordered.column, ["route"], DAY, 4).items(1, 2) == store.items(1, 2)
    # Compact: fixed-width arrays, no Python object per row.
    assert all(isinstance(a, np.ndarray) for a in (store.user_ids, store.track_ids, store.scores))


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"])
def test_loopback_binds_need_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.com"])
def test_other_binds_need_a_token(host):
    assert not is_loopback(host)
    with pytest.raises(ConfigError, match="LAKEHOUSE_SERVE_TOKEN"):
        check_bind(host, None)
    with pytest.raises(ConfigError):
        check_bind(host, "")
    # Issue 21: a one-character token passed for a public bind.
    for short in ("q", "s3cret", "fifteen-chars-q"):
        with pytest.raises(ConfigError, match=f"{len(short)}-character") as caught:
            check_bind(host, short)
        assert short not in str(caught.value).replace(f"{len(short)}-character", "")
    check_bind(host, "sixteen-chars-xx")
    check_bind("127.0.0.1", "x")  # on loopback the token is an extra: any length


def test_the_cli_refuses_a_public_bind_without_a_token_in_one_line(trained_lake):
    result = CliRunner().invoke(cli, ["--lake", str(trained_lake.lake), "serve",
                                      "--host", "0.0.0.0", "--port", "0"],
                                env={"LAKEHOUSE_SERVE_TOKEN": ""})
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: refusing to serve on 0.0.0.0 without a token; set LAKEHOUSE_SERVE_TOKEN, "
        "which clients then send in their Authorization header, or bind 127.0.0.1"]


def test_a_bad_reload_interval_is_refused(trained_lake):
    # Refused where every setting is: when the settings are made, before any Service.
    for bad in (0.0, -1, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="LAKEHOUSE_SERVE_RELOAD_SECONDS"):
            Service(trained_lake.replace(serve_reload_seconds=bad))


def _added_files(lake: Lake, version: int) -> list[Path]:
    before = set(lake.delta(names.CONS_RECOMMENDATIONS, version - 1).file_uris())
    after = set(lake.delta(names.CONS_RECOMMENDATIONS, version).file_uris())
    return [Path(u.removeprefix("file://")) for u in after - before]


@pytest.mark.slow
def test_a_version_that_fails_to_load_keeps_the_previous_one_serving(
        tmp_path, trained_lake, caplog):
    settings = copy_lake(trained_lake, tmp_path)
    lake = Lake(settings.lake, create=False)
    service = Service(settings)
    assert service.refresh()
    served = service.snapshot.batch
    user = int(served.user_ids[0])
    answer = service.recommend(user)
    rows = lake.to_arrow(names.CONS_RECOMMENDATIONS)
    day = served.score_date
    rows = rows.filter(pc.equal(rows.column(names.SCORE_DATE), pa.scalar(day)))
    broken = lake.write(names.CONS_RECOMMENDATIONS, rows, mode="replace_partition",
                        partition={names.SCORE_DATE: day.isoformat()})
    for path in _added_files(lake, broken.version):
        path.unlink()  # a half-copied or vacuumed data file
    with caplog.at_level(logging.ERROR, logger="lakehouse.serve"):
        assert not service.refresh()
        assert not service.refresh()
    assert service.snapshot.batch is served and service.recommend(user) == answer
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1, "a failing version is logged once, not at every check"
    assert f"version {broken.version}" in errors[0].getMessage()
    ok, health = service.health()
    assert ok and health["table_version"] == served.table_version
    assert str(broken.version) in health["reload_errors"]["recommendations"]

    fixed = lake.write(names.CONS_RECOMMENDATIONS, rows, mode="replace_partition",
                       partition={names.SCORE_DATE: day.isoformat()})
    assert service.refresh()
    assert service.snapshot.batch.table_version == fixed.version
    assert service.health()[1]["reload_errors"] == {}


def test_k_above_the_stored_k_and_a_lake_without_recommendations(loaded, sample_lake):
    service = loaded
    with pytest.raises(KLimitError) as caught:
        service.recommend(1, k=11)
    assert caught.value.limit == 10
    empty = Service(sample_lake)
    empty.refresh()
    with pytest.raises(NothingToServeError, match="lakehouse recommend"):
        empty.recommend(1)
    assert empty.health()[0] is False


@pytest.mark.parametrize(("path", "query", "answered"), [
    ("/recommendations/5", b"", True),
    ("/recommendations/5", b"k=3", True),
    ("/recommendations/0005", b"k=03", True),
    ("/recommendations/5/", b"", False),
    ("/recommendations/0", b"", False),
    ("/recommendations/-5", b"", False),
    ("/recommendations/\u0665", b"", False),          # a non-ASCII digit
    (f"/recommendations/{2**63}", b"", False),
    ("/recommendations/5", b"k=0", False),
    ("/recommendations/5", b"k=101", False),
    ("/recommendations/5", b"k=3&k=4", False),
    ("/recommendations/5", b"date=2026-10-30", False),
    ("/recommendations/5", b"favorite_genre=Rock", False),
    ("/health", b"", False),
])
def test_the_fast_path_takes_only_what_it_can_answer_exactly(loaded, path, query, answered):
    from lakehouse.serve.app import FastPath

    service = loaded
    fast = FastPath(app=None, service=service)
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query,
             "headers": []}
    assert (fast._answer(scope) is not None) is answered
    assert fast._answer({**scope, "method": "POST"}) is None
    guarded = FastPath(app=None, service=service, token="s3cret")
    assert guarded._answer(scope) is None  # no token: FastAPI answers the 401
    good = {**scope, "headers": [(b"authorization", b"Bearer s3cret")]}
    assert (guarded._answer(good) is not None) is answered


def test_a_torn_recommendations_log_is_logged_once_and_shown_in_health(tmp_path, trained_lake,
                                                                       caplog):
    # Issue 21: a traceback at every reload check (13 in 13 s) and /health said ok.
    settings = copy_lake(trained_lake, tmp_path)
    lake = Lake(settings.lake, create=False)
    service = Service(settings)
    assert service.refresh()
    served = service.snapshot.batch
    user = int(served.user_ids[0])
    answer = service.recommend(user)
    last = sorted((lake.path(names.CONS_RECOMMENDATIONS) / "_delta_log").glob("*.json"))[-1]
    # The next commit, torn mid-write (a copy of the last one, cut in half).
    torn = last.with_name(f"{int(last.stem) + 1:020d}.json")
    good = last.read_bytes()
    torn.write_bytes(good[: len(good) // 2])
    with caplog.at_level(logging.INFO, logger="lakehouse.serve"):
        for _ in range(5):
            assert not service.refresh()
    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(problems) == 1, [r.getMessage() for r in problems]
    assert problems[0].exc_info is None and "Traceback" not in caplog.text
    assert names.CONS_RECOMMENDATIONS in problems[0].getMessage()
    assert service.recommend(user) == answer
    ok, health = service.health()
    assert ok and health["table_version"] == served.table_version
    assert "cannot read the Delta log" in health["reload_errors"][names.CONS_RECOMMENDATIONS]

    torn.unlink()
    service.refresh()
    assert service.health()[1]["reload_errors"] == {}
