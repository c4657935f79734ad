"""Status: healthy on a fresh lake, unhealthy on a stale, failed or unscored one."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse import names
from lakehouse.errors import LakeError
from lakehouse.lake import utc_now
from lakehouse.monitor import alerts as al
from lakehouse.monitor import status as status_mod
from lakehouse.monitor.status import ModelStatus, status

from .conftest import DAY1, DAY2, healthy_runs, run, write_runs


def problems(st):
    return sorted((p.kind, p.subject) for p in st.errors)


def test_a_fresh_lake_is_healthy(lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1))
    st = status(lake_settings)
    assert st.healthy, st.problems
    assert [e.target for e in st.endpoints] == list(names.ENDPOINTS)
    assert all(e.last_status == "success" and e.age_hours < 1 for e in st.endpoints)
    assert {t.name for t in st.tables} == {names.META_RUNS}
    assert st.lake_bytes > 0
    # No champion yet: worth a warning, not an error.
    assert [(p.kind, p.severity) for p in st.problems] == [("no_model", "warning")]


def test_a_stale_lake_is_unhealthy(lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1))
    later = utc_now() + dt.timedelta(hours=lake_settings.stale_hours + 1)
    st = status(lake_settings, now=later)
    assert not st.healthy
    assert problems(st) == [("stale", "build")] + [("stale", f"ingest:{e}")
                                                   for e in sorted(names.ENDPOINTS)]
    assert "stale" in st.errors[0].message
    assert status(lake_settings.replace(stale_hours=1000), now=later).healthy


def test_a_failed_last_run_is_unhealthy_until_a_later_success(lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1),
               run("ingest", "tracks", DAY2, names.FAILED, error="HTTP 503 after 6 retries"))
    st = status(lake_settings)
    assert not st.healthy and problems(st) == [("run_failed", "ingest:tracks")]
    assert "HTTP 503" in st.errors[0].message
    tracks = next(e for e in st.endpoints if e.target == "tracks")
    assert tracks.last_status == "failed" and tracks.error.startswith("HTTP 503")
    assert tracks.last_success_at is not None  # the day-1 success still counts for freshness

    write_runs(lake_settings, run("ingest", "tracks", DAY2, records=5))
    assert status(lake_settings).healthy


def test_a_failed_build_or_training_is_unhealthy(lake_settings):
    write_runs(lake_settings, *healthy_runs(DAY1),
               run("build", names.STD_TRACKS, DAY1, names.FAILED, error="check unique failed"),
               run("train", "models", DAY1, names.FAILED, error="not enough listens"))
    assert problems(status(lake_settings)) == [
        ("run_failed", "build:standardized.tracks"), ("run_failed", "train:models")]


def test_a_lake_never_ingested_or_built_is_unhealthy(lake_settings):
    write_runs(lake_settings, run("ingest", "users", DAY1, records=1))
    st = status(lake_settings)
    assert problems(st) == [("stale", "build"), ("stale", "ingest:listen_history"),
                            ("stale", "ingest:tracks")]
    assert "never ingested" in st.errors[1].message


def test_no_lake_is_an_error(lake_settings):
    with pytest.raises(LakeError, match="no lake"):
        status(lake_settings)


@pytest.fixture
def champion(monkeypatch):
    model = ModelStatus("v0001", utc_now(), {"precision_at_10": 0.2}, {"precision_at_10": 0.1}, 1)
    monkeypatch.setattr(status_mod, "_champion", lambda settings: (model, None))
    return model


def test_a_champion_without_a_recent_scoring_run_is_missed_scoring(lake_settings, champion):
    write_runs(lake_settings, *healthy_runs(DAY1))
    st = status(lake_settings)
    assert problems(st) == [("missed_scoring", "recommend")]
    assert "never ran" in st.errors[0].message

    write_runs(lake_settings, run("recommend", names.CONS_RECOMMENDATIONS, DAY1, records=10))
    assert status(lake_settings).healthy
    later = utc_now() + dt.timedelta(hours=lake_settings.stale_hours + 1)
    assert ("missed_scoring", "recommend") in problems(status(lake_settings, now=later))

    write_runs(lake_settings, run("recommend", names.CONS_RECOMMENDATIONS, DAY2,
                                  names.FAILED, error="model checksum mismatch"))
    assert problems(status(lake_settings)) == [
        ("run_failed", f"recommend:{names.CONS_RECOMMENDATIONS}")]


def test_status_alerts_share_keys_with_run_alerts_so_they_deduplicate(lake_settings, receiver):
    settings = lake_settings.replace(alert_webhook=receiver.url)
    failed = run("ingest", "users", DAY1, names.FAILED, error="boom")
    write_runs(settings, *healthy_runs(DAY1)[1:], failed)
    al.notify_runs(settings, [failed])
    st = status(settings)
    assert "run_failed:ingest:users" in {a.key for a in st.alerts()}
    sent = al.send_alerts(settings, st.alerts())
    assert all(a.suppressed for a in sent if a.key == "run_failed:ingest:users")
    assert len(receiver.bodies) == 1 + sum(not a.suppressed for a in sent)


@pytest.mark.slow
def test_the_trained_sample_lake_is_healthy(trained_lake):
    st = status(trained_lake)
    assert st.healthy, st.problems
    assert st.model is not None and st.model.metrics.get("precision_at_10") is not None
    assert st.last_recommendations is not None
    assert {names.CONS_RECOMMENDATIONS, names.STD_USERS} <= {t.name for t in st.tables}
