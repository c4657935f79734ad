"""``lakehouse.ingest.ingest`` against a tiny scripted API: completeness,
drift, independence and bad input, each as a test that could fail."""

from __future__ import annotations

import datetime as dt
import json
import os
import threading

import pyarrow as pa
import pytest

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.errors import ConfigError, LakeError, LockedError
from lakehouse.ingest import ingest
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.monitor.status import status
from lakehouse.source.errors import NotTheApiError, SourceUnreachableError

DAY = dt.date(2026, 11, 26)


def settings(tmp_path, api, **kw) -> Settings:
    opts = {"workers": 3, "max_retries": 2, "backoff_factor": 0.01, "backoff_max": 0.05,
            "connect_timeout": 1.0, "read_timeout": 3.0, **kw}
    return Settings.load(env={}, lake=tmp_path / "lake", api_url=api.url, **opts)


def rows(s: Settings, table: str, date: dt.date | None = DAY) -> list[dict]:
    lake = Lake(s.lake, create=False)
    where = f"WHERE ingest_date = DATE '{date}'" if date else ""
    return lake.sql(f"SELECT * FROM {table} {where}").arrow().read_all().to_pylist()


def test_lands_every_endpoint_faithfully_with_run_records(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    runs = ingest(s, ["tracks", "users", "listen_history"], date=DAY)
    assert [r.target for r in runs] == ["tracks", "users", "listen_history"]
    assert all(r.ok and r.records == 250 and r.pages == 3 for r in runs), runs
    assert all(r.pipeline == "ingest" and r.run_date == DAY and r.table_version == 0
               for r in runs)
    assert all(r.requests == 3 and r.retries == 0 and r.bytes > 0 for r in runs)
    lake = Lake(s.lake)
    assert lake.schema(names.RAW_LISTEN_HISTORY) == pa.schema([
        ("user_id", pa.int64()), ("items", pa.list_(pa.int64())),
        ("created_at", pa.string()), ("updated_at", pa.string()),
        (names.RUN_ID, pa.string()), (names.INGESTED_AT, pa.timestamp("us", tz="UTC")),
        (names.PAGE, pa.int64()), (names.INGEST_DATE, pa.date32())])
    assert lake.schema(names.RAW_USERS).names[:8] == [
        "id", "first_name", "last_name", "email", "gender", "favorite_genres", "created_at",
        "updated_at"]
    assert lake.delta(names.RAW_TRACKS).metadata().partition_columns == [names.INGEST_DATE]
    got = rows(s, names.RAW_LISTEN_HISTORY)
    sent = api.data["listen_history"]
    assert [{k: r[k] for k in sent[0]} for r in got] == sent  # faithful, in order
    assert {r[names.RUN_ID] for r in got} == {runs[2].run_id}
    assert [r[names.PAGE] for r in got] == [1] * 100 + [2] * 100 + [3] * 50
    logged = lake.sql("SELECT target, run_id, status, records, pages, table_version "
                      "FROM meta.runs ORDER BY target").fetchall()
    assert sorted(logged) == sorted((r.target, r.run_id, "success", 250, 3, 0) for r in runs)


def test_rerunning_a_date_replaces_its_partition(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["users"], date=DAY)
    ingest(s, ["users"], date=DAY - dt.timedelta(days=1))
    api.data["users"] = api.data["users"][:200]
    second = ingest(s, ["users"], date=DAY)[0]
    assert second.ok and second.table_version == 2
    counts = Lake(s.lake).sql("SELECT ingest_date, count(*) FROM raw.users GROUP BY 1 "
                              "ORDER BY 1").fetchall()
    assert counts == [(DAY - dt.timedelta(days=1), 250), (DAY, 200)]


def test_empty_endpoint_lands_an_empty_partition_when_allowed(tmp_path, fake_api):
    # Without allow_empty this run fails and keeps the data (test_ingest_guards.py).
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["users"], date=DAY)
    api.data["users"] = []
    run = ingest(s, ["users"], date=DAY, allow_empty=True)[0]
    assert run.ok and run.records == 0
    assert rows(s, names.RAW_USERS) == []


def test_a_total_that_changes_once_is_read_again(tmp_path, fake_api):
    moved = threading.Event()

    def grow(req):
        if req.endpoint == "users" and req.page == 3 and not moved.is_set():
            moved.set()
            api.data["users"] = api.data["users"] + [dict(api.data["users"][0], id=9999)]
    api = fake_api(hook=grow)
    s = settings(tmp_path, api)
    run = ingest(s, ["users"], date=DAY)[0]
    assert run.ok, run.error
    assert run.records == 251 and run.details["attempts"] == 2
    assert len(rows(s, names.RAW_USERS)) == 251


def test_a_source_that_keeps_moving_fails_and_writes_nothing(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["users"], date=DAY)
    before = Lake(s.lake).version(names.RAW_USERS)

    def grow(req):
        if req.endpoint == "users" and req.page == 2:
            with api.lock:
                api.data["users"] = api.data["users"] + [dict(api.data["users"][0])]
    api.hook = grow
    run = ingest(s, ["users"], date=DAY)[0]
    assert not run.ok
    assert "source moved" in run.error and "total went from" in run.error
    assert "nothing written" in run.error
    assert Lake(s.lake).version(names.RAW_USERS) == before
    assert len(rows(s, names.RAW_USERS)) == 250


def test_fewer_records_than_total_is_never_committed(tmp_path, fake_api):
    def short(req):
        if req.page == 2:
            env = api.envelope(req.endpoint, req.page, req.size)
            env["items"] = env["items"][:-1]
            return 200, {}, json.dumps(env).encode()
    api = fake_api(hook=short)
    s = settings(tmp_path, api)
    run = ingest(s, ["tracks"], date=DAY)[0]
    assert not run.ok and "read 249 records but total is 250" in run.error
    assert not Lake(s.lake).exists(names.RAW_TRACKS)


def test_new_field_is_kept_and_reported(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["tracks"], date=DAY - dt.timedelta(days=1))
    for i, t in enumerate(api.data["tracks"]):
        t["bpm"] = 100 + i
    run = ingest(s, ["tracks"], date=DAY)[0]
    assert run.ok, run.error
    assert "new field bpm (int64) kept as a column" in run.schema_changes
    assert "added column bpm" in run.schema_changes
    got = rows(s, names.RAW_TRACKS)
    assert [r["bpm"] for r in got] == list(range(100, 350))
    old = rows(s, names.RAW_TRACKS, DAY - dt.timedelta(days=1))
    assert {r["bpm"] for r in old} == {None}


def test_new_field_first_seen_on_a_later_page_is_kept(tmp_path, fake_api):
    api = fake_api()
    api.data["users"][220]["country"] = "SE"
    s = settings(tmp_path, api)
    run = ingest(s, ["users"], date=DAY)[0]
    assert run.ok, run.error
    assert run.details["attempts"] == 2
    got = rows(s, names.RAW_USERS)
    assert [r["id"] for r in got if r["country"]] == [221]


def test_missing_field_becomes_null_and_is_reported(tmp_path, fake_api):
    api = fake_api()
    for u in api.data["users"][:10]:
        del u["gender"]
    s = settings(tmp_path, api)
    run = ingest(s, ["users"], date=DAY)[0]
    assert run.ok
    assert run.schema_changes == ["missing field gender: null in 10 of 250 records"]
    assert sum(r["gender"] is None for r in rows(s, names.RAW_USERS)) == 10


def test_changed_type_fails_the_endpoint_naming_field_and_example(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["tracks", "users"], date=DAY)
    versions = {t: Lake(s.lake).version(t) for t in (names.RAW_TRACKS, names.RAW_USERS)}
    api.data["tracks"][180]["duration"] = 458
    runs = ingest(s, ["tracks", "users"], date=DAY)
    assert [r.status for r in runs] == ["failed", "success"]
    assert "field 'duration' changed type: expected string, got integer (e.g. 458)" \
        in runs[0].error
    assert "nothing written to raw.tracks" in runs[0].error
    lake = Lake(s.lake)
    assert lake.version(names.RAW_TRACKS) == versions[names.RAW_TRACKS]
    assert lake.version(names.RAW_USERS) == versions[names.RAW_USERS] + 1


@pytest.mark.slow
def test_one_failing_endpoint_leaves_the_others_and_its_partition(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, date=DAY)
    api.hook = lambda r: (503, {}, b'{"detail":"down"}') if r.endpoint == "tracks" else None
    runs = ingest(s, date=DAY)
    assert [r.status for r in runs] == ["success", "failed", "success"]
    assert "503" in runs[1].error and "down" in runs[1].error
    assert runs[1].retries >= 2
    assert len(rows(s, names.RAW_TRACKS)) == 250
    failed = Lake(s.lake).sql("SELECT error FROM meta.runs WHERE status = 'failed'").fetchall()
    assert len(failed) == 1 and "503" in failed[0][0]


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["reset", "truncate", 429, 500, 503])
def test_transient_faults_give_the_clean_result(tmp_path, fake_api, fault):
    clean_api = fake_api()
    clean = settings(tmp_path / "clean", clean_api)
    ingest(clean, date=DAY)

    def flaky(req):
        if req.n == 1 and (req.page % 2 == 1):
            return fault if isinstance(fault, str) else (fault, {}, b'{"detail":"x"}')
    api = fake_api(hook=flaky)
    s = settings(tmp_path, api, max_retries=3)
    runs = ingest(s, date=DAY)
    assert all(r.ok for r in runs), [r.error for r in runs]
    assert sum(r.retries for r in runs) >= 5  # page 1 of users went to the pre-flight
    for table in (names.RAW_USERS, names.RAW_TRACKS, names.RAW_LISTEN_HISTORY):
        strip = [{k: v for k, v in r.items() if k not in names.RAW_META_COLUMNS}
                 for r in rows(s, table)]
        want = [{k: v for k, v in r.items() if k not in names.RAW_META_COLUMNS}
                for r in rows(clean, table)]
        assert strip == want


@pytest.mark.slow
def test_the_daily_job_still_builds_when_one_endpoint_is_broken(tmp_path, fake_api):
    from lakehouse.daily import daily

    api = fake_api()
    s = settings(tmp_path, api, retrain_weekday=-1)
    assert all(r.ok for r in ingest(s, date=DAY - dt.timedelta(days=1)))
    api.hook = cut_json(api)
    result = daily(s, date=DAY, retrain=False, report=False)
    steps = {step.name: step.status for step in result.steps}
    assert steps["ingest"] == "failed" and steps["build"] == "success", result.steps
    assert steps["status"] == "failed"  # the failed users run makes the lake unhealthy


# --------------------------------------------------------------------- bad input
def test_unknown_endpoint(tmp_path, fake_api):
    s = settings(tmp_path, fake_api())
    with pytest.raises(ConfigError, match="unknown endpoint.*'songs'.*users, tracks"):
        ingest(s, ["users", "songs"], date=DAY)
    assert not s.lake.exists()


@pytest.mark.parametrize("url", ["localhost:8000", "ftp://127.0.0.1", "http://"])
def test_bad_url(tmp_path, url):
    # Settings refuse it as they load, whatever the origin of the value.
    with pytest.raises(ConfigError, match="bad API URL"):
        ingest(Settings.load(env={}, lake=tmp_path / "lake", api_url=url), date=DAY)


def test_bad_date_and_page_size(tmp_path, fake_api):
    s = settings(tmp_path, fake_api())
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        ingest(s, date="2026-02-30")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="page size 101"):
        ingest(s.replace(page_size=101), date=DAY)


def failed_runs(s: Settings) -> list[tuple[str, str]]:
    return Lake(s.lake).sql("SELECT target, error FROM meta.runs WHERE status = 'failed' "
                            "ORDER BY target").fetchall()


def assert_no_raw(s: Settings) -> None:
    assert not (s.lake / "raw").exists()


def test_unreachable_url_is_one_error_and_a_failed_run_per_endpoint(tmp_path):
    s = Settings.load(env={}, lake=tmp_path / "lake", api_url="http://127.0.0.1:9",
                      max_retries=1, backoff_factor=0.01, backoff_max=0.02)
    with pytest.raises(SourceUnreachableError, match="cannot reach the API"):
        ingest(s, date=DAY)
    assert_no_raw(s)
    # Issue 21: the run log said nothing, and status stayed healthy.
    failed = failed_runs(s)
    assert [t for t, _ in failed] == sorted(names.ENDPOINTS)
    assert all(e.startswith("cannot reach the API") for _, e in failed)
    assert any("ingest of users" in p.message and "cannot reach" in p.message
               for p in status(s).errors)


@pytest.mark.slow
def test_a_url_that_is_not_this_api(tmp_path, fake_api):
    html = fake_api(hook=lambda r: (200, {"Content-Type": "text/html"}, b"<!doctype html>"))
    with pytest.raises(NotTheApiError, match="not JSON"):
        ingest(settings(tmp_path / "a", html), date=DAY)
    assert_no_raw(settings(tmp_path / "a", html))
    assert len(failed_runs(settings(tmp_path / "a", html))) == 3
    # Every endpoint was asked before the URL was called wrong.
    assert {r.endpoint for r in html.log} == {"users", "tracks", "listen_history"}
    missing = fake_api(hook=lambda r: (404, {}, b'{"detail":"Not Found"}'))
    with pytest.raises(NotTheApiError, match="404.*MooVitamix API"):
        ingest(settings(tmp_path / "b", missing), date=DAY)
    other = fake_api(hook=lambda r: (200, {}, b'[{"id": 1}]'))
    with pytest.raises(NotTheApiError, match="envelope"):
        ingest(settings(tmp_path / "c", other), date=DAY)


def test_a_refused_token_stops_at_once(tmp_path, fake_api):
    api = fake_api(hook=lambda r: (401, {}, b'{"detail":"no"}'))
    with pytest.raises(NotTheApiError, match="401.*LAKEHOUSE_API_TOKEN"):
        ingest(settings(tmp_path, api), date=DAY)
    assert {r.endpoint for r in api.log} == {"users"}
    assert len(failed_runs(settings(tmp_path, api))) == 3


def cut_json(api):
    """A 200 whose JSON stops half-way, Content-Length matching (the mock's 'truncated')."""
    def hook(req):
        if req.endpoint != "users":
            return None
        body = json.dumps(api.envelope(req.endpoint, req.page, req.size)).encode()
        return (200, {}, body[: len(body) // 2])
    return hook


@pytest.mark.parametrize("how", ["json cut, length matching", "body cut on the wire"])
def test_a_broken_first_endpoint_leaves_the_others_independent(tmp_path, fake_api, how):
    api = fake_api()
    api.hook = cut_json(api) if how.startswith("json") else \
        (lambda r: "truncate" if r.endpoint == "users" else None)
    s = settings(tmp_path, api)
    runs = ingest(s, date=DAY)
    assert [(r.target, r.status) for r in runs] == [
        ("users", "failed"), ("tracks", "success"), ("listen_history", "success")]
    assert len(rows(s, names.RAW_TRACKS)) == 250
    assert [t for t, _ in failed_runs(s)] == ["users"]
    # The error line says what broke, never what the body held (it quoted a first name).
    error = runs[0].error
    assert "F1" not in error and "first_name" not in error and "u1@" not in error, error
    assert ("not JSON" if how.startswith("json") else "broke off") in error
    assert any(p.subject == "ingest:users" for p in status(s).errors)


def test_persistent_5xx_on_the_first_endpoint_is_not_a_bad_url(tmp_path, fake_api):
    api = fake_api(hook=lambda r: (500, {}, b"{}") if r.endpoint == "users" else None)
    runs = ingest(settings(tmp_path, api, max_retries=1), date=DAY)
    assert [r.status for r in runs] == ["failed", "success", "success"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_lake(tmp_path, fake_api):
    s = settings(tmp_path, fake_api())
    s.lake.mkdir()
    s.lake.chmod(0o500)
    try:
        with pytest.raises(LakeError, match="not writable"):
            ingest(s, date=DAY)
    finally:
        s.lake.chmod(0o700)


def test_lock_busy_without_wait(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    with lake_lock(s.locks_dir, "ingest"), pytest.raises(LockedError, match="another 'ingest'"):
        ingest(s, date=DAY, wait=False)
    assert api.log == []


def test_a_second_ingest_waits_for_the_first(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    order = []
    with lake_lock(s.locks_dir, "ingest"):
        t = threading.Thread(target=lambda: order.append(ingest(s, ["users"], date=DAY)))
        t.start()
        t.join(0.5)
        assert t.is_alive() and api.log == []
        order.append("released")
    t.join(10)
    assert order[0] == "released" and order[1][0].ok


def test_progress_events_per_page_and_a_summary_per_endpoint(tmp_path, fake_api, capsys):
    s = settings(tmp_path, fake_api())
    events = []
    ingest(s, ["users", "tracks"], date=DAY, progress=events.append)
    users = [e for e in events if e.task == "users"]
    assert [(e.done, e.total) for e in users] == [(1, 3), (2, 3), (3, 3), (3, 3)]
    assert [e.finished for e in users] == [False, False, False, True]
    assert users[-1].message.startswith(f"ingest users {DAY}: success, 250 records, 3 pages")
    assert {e.step for e in events} == {"ingest"} and events[-1].task == "tracks"
    assert capsys.readouterr() == ("", "")  # the library never prints


def test_a_failing_progress_callback_does_not_stop_the_ingest(tmp_path, fake_api):
    def broken(event):
        raise RuntimeError("renderer bug")

    runs = ingest(settings(tmp_path, fake_api()), ["users"], date=DAY, progress=broken)
    assert runs[0].ok


def test_lake_path_that_is_a_file(tmp_path, fake_api):
    s = settings(tmp_path, fake_api())
    s.lake.write_text("not a folder")
    with pytest.raises(LakeError, match="is a file"):
        ingest(s, date=DAY)


def test_silent_without_a_progress_callback(tmp_path, fake_api, capsys):
    ingest(settings(tmp_path, fake_api()), ["users"], date=DAY)
    assert capsys.readouterr().err == ""
