"""Listens but no holdout: popularity becomes champion so the daily job still delivers."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.context import as_context
from lakehouse.daily import _train as daily_train
from lakehouse.lake import Lake
from lakehouse.monitor.report import write_report
from lakehouse.recsys.registry import Registry

from .conftest import LAST_DAY, START, TS, write_tiny_lake

USERS, TRACKS = 30, 12


def _one_track_each(root) -> Lake:
    """A lake where user i listens (three times) to track i % TRACKS and nothing else."""
    lake = write_tiny_lake(root, users=USERS, tracks=TRACKS, listens=50)
    users = [10 * (i + 1) for i in range(USERS)]
    track = {u: 7 * (i % TRACKS + 1) for i, u in enumerate(users)}
    rows = [(u, track[u], START + dt.timedelta(hours=i * 3 + n))
            for i, u in enumerate(users) for n in range(3)]
    lake.write(names.STD_LISTENS, pa.table({
        "record_id": pa.array([f"r{i}" for i in range(len(rows))]),
        names.USER_ID: pa.array([r[0] for r in rows], pa.int64()),
        names.TRACK_ID: pa.array([r[1] for r in rows], pa.int64()),
        "position": pa.array([0] * len(rows), pa.int64()),
        "created_at": pa.array([r[2] for r in rows], TS),
        "updated_at": pa.array([r[2] for r in rows], TS)}), mode="replace")
    lake.write(names.CONS_INTERACTIONS, pa.table({
        names.USER_ID: pa.array(users, pa.int64()),
        names.TRACK_ID: pa.array([track[u] for u in users], pa.int64()),
        "listens": pa.array([3] * USERS, pa.int64()),
        "first_listen_at": pa.array([START] * USERS, TS),
        "last_listen_at": pa.array([START] * USERS, TS)}), mode="replace")
    return lake


@pytest.fixture
def invoke(tmp_path, monkeypatch):
    for var in ("LAKEHOUSE_ALERT_WEBHOOK", "LAKEHOUSE_ALERT_COMMAND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKEHOUSE_TRAIN_THREADS", "1")
    runner = CliRunner()
    lake = tmp_path / "lake"

    def run(*args: str):
        return runner.invoke(cli, ["--lake", str(lake), *args])

    run.lake = lake
    return run


def test_one_track_per_user_gets_a_popularity_champion_and_recommendations(invoke):
    lake = _one_track_each(invoke.lake)
    trained = invoke("train", "--date", LAST_DAY.isoformat(), "--budget", "5s", "--trials", "1")
    assert trained.exit_code == 0, trained.output
    assert trained.output == (
        f"nothing can be evaluated yet (each of the {USERS} users with listens has one "
        "distinct track): popularity (v0001) is champion until there is a holdout\n")
    registry = Registry(invoke.lake / "models")
    info = registry.get("champion")
    assert info.version == "v0001" and info.params["family"] == "popularity"
    assert info.metrics == {"model": None, "baseline": None, "cold_start": None,
                            "cold_start_baseline": None}
    assert info.selection["evaluated"] is False
    assert "one distinct track" in info.selection["reason"]
    assert info.lineage["listens"] == USERS * 3  # fitted on every listen

    recommended = invoke("recommend", "--date", LAST_DAY.isoformat(), "--k", "5")
    assert recommended.exit_code == 0, recommended.output
    recs = lake.to_arrow(names.CONS_RECOMMENDATIONS).to_pandas()
    assert len(recs) == USERS * 5
    assert (recs.groupby(names.USER_ID).size() == 5).all()
    assert set(recs["route"]) == {"warm:popularity"}
    heard = lake.to_arrow(names.CONS_INTERACTIONS).to_pandas()
    assert recs.merge(heard, on=[names.USER_ID, names.TRACK_ID]).empty

    # Every reader of the registry copes with an entry that has no metrics.
    listed = invoke("models", "list", "--format", "csv")
    assert listed.exit_code == 0, listed.output
    assert "v0001,champion,popularity" in listed.output
    shown = invoke("models", "show", "champion")
    assert shown.exit_code == 0 and json.loads(shown.output)["metrics"]["model"] is None
    status = invoke("status")
    assert "Traceback" not in status.output and "v0001" in status.output
    assert "cannot be used" not in status.output
    assert "v0001" in write_report(Settings.load(env={}, lake=invoke.lake)).read_text()


def test_a_second_training_without_holdout_keeps_the_champion(invoke):
    lake = _one_track_each(invoke.lake)
    assert invoke("train", "--budget", "5s", "--trials", "1").exit_code == 0
    again = invoke("train", "--budget", "5s", "--trials", "1")
    assert again.exit_code == 0, again.output
    assert again.output == (
        f"nothing can be evaluated yet (each of the {USERS} users with listens has one "
        "distinct track): champion v0001 is kept until there is a holdout\n"
        "in production: v0001 has no complete online outcome with at least 30 users yet "
        "(lakehouse outcomes)\n")
    registry = Registry(invoke.lake / "models")
    assert registry.alias("champion") == "v0001"
    assert [i.version for i in registry.versions()] == ["v0001"]
    runs = [r for r in lake.to_arrow(names.META_RUNS).to_pylist() if r["pipeline"] == "train"]
    assert [r["status"] for r in runs] == [names.SUCCESS, names.SUCCESS]


def test_the_daily_job_says_why_in_its_train_line(invoke):
    _one_track_each(invoke.lake)
    settings = Settings.load(env={}, lake=invoke.lake, train_trials=1, train_budget=5,
                             train_threads=1)
    outcome = daily_train(as_context(settings, date=LAST_DAY), "no champion yet")
    assert outcome.status == names.SUCCESS
    assert outcome.detail == (
        f"no champion yet: v0001 (popularity) nothing can be evaluated yet (each of the "
        f"{USERS} users with listens has one distinct track): popularity (v0001) is "
        "champion until there is a holdout")


def test_promote_never_registers_popularity_without_a_champion(invoke):
    _one_track_each(invoke.lake)
    trained = invoke("train", "--budget", "5s", "--trials", "1", "--promote", "never")
    assert trained.exit_code == 0, trained.output
    assert "popularity registered as v0001, not promoted (--promote never)" in trained.output
    registry = Registry(invoke.lake / "models")
    assert registry.alias("champion") is None and registry.alias("challenger") == "v0001"


def test_zero_listens_is_a_one_line_error(invoke):
    lake = _one_track_each(invoke.lake)
    empty = lake.to_arrow(names.STD_LISTENS).slice(0, 0)
    lake.write(names.STD_LISTENS, empty, mode="replace")
    trained = invoke("train", "--budget", "5s", "--trials", "1")
    assert trained.exit_code == 1
    assert trained.output == ("Error: no listens to train on; ingest and build some data "
                              "first\n")
    assert not (invoke.lake / "models").exists() or not Registry(
        invoke.lake / "models").versions()
