"""Online outcomes on constructed lakes whose answer is worked out by hand.

The lake holds only what the outcome reads: ``standardized.tracks`` (when each
track entered the catalogue), ``standardized.listens`` (each listened pair's
first ingest date) and ``consumption.recommendations``.

The reference scenario (k = 2, horizon 2 days, score date S = D0):

- catalogue on S: tracks 1..6; track 7 arrives on D1 (new to the catalogue);
- heard by S: user 1 tracks 1, 2; user 2 track 1; user 3 track 3; popularity as
  of S: track 1 (2 listeners), then 2, 3 (1 each), then 4, 5, 6 (ties: lower id);
- served on S: user 1 [3, 4], user 2 [2, 5], user 3 [6, 1], user 4 [1, 2];
- after S: user 1 plays 4 (new, served at rank 2), 7 (new to the catalogue:
  excluded) and 1 again (a re-listen: excluded) on D1; user 2 plays 3 on D2
  (new, not served); user 3 plays 2 on D3 (beyond the horizon); user 4 nothing.

So the users are 1 and 2. User 1: 1 hit of 1 new pair at rank 2 (precision 1/2,
recall 1, ndcg 1/log2(3)); popularity without tracks 1, 2 is [3, 4]: a hit.
User 2: no hit; popularity without track 1 is [2, 3]: a hit.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.lake import Lake
from lakehouse.monitor.outcomes import (
    MIN_USERS,
    ONLINE_LIFT,
    OUTCOMES_ARROW,
    TABLE,
    measure,
    note,
    online_alerts,
    read_outcomes,
    refresh,
)
from lakehouse.monitor.outcomes_step import refresh_outcomes
from lakehouse.monitor.report import write_report

D0, D1, D2, D3, D4 = (dt.date(2026, 3, 1) + dt.timedelta(days=n) for n in range(5))
CATALOGUE = {t: D0 for t in range(1, 7)} | {7: D1}
HEARD = {1: [1, 2], 2: [1], 3: [3]}
LATER = [(1, 4, D1), (1, 7, D1), (1, 1, D1), (2, 3, D2), (3, 2, D3)]
LISTS = {1: [3, 4], 2: [2, 5], 3: [6, 1], 4: [1, 2]}
NDCG_RANK_2 = 1 / math.log2(3)


def write_tracks(lake: Lake, catalogue: dict[int, dt.date], last: dt.date) -> None:
    lake.write(names.STD_TRACKS, pa.table({
        names.TRACK_ID: pa.array(list(catalogue), pa.int64()),
        "first_ingest_date": pa.array(list(catalogue.values()), pa.date32()),
        "last_ingest_date": pa.array([last] * len(catalogue), pa.date32()),
    }), mode="replace")


def write_listens(lake: Lake, heard: dict[int, list[int]], later, *, day0=D0) -> None:
    rows = [(u, t, day0) for u, ts in heard.items() for t in ts] + list(later)
    lake.write(names.STD_LISTENS, pa.table({
        names.USER_ID: pa.array([r[0] for r in rows], pa.int64()),
        names.TRACK_ID: pa.array([r[1] for r in rows], pa.int64()),
        "first_ingest_date": pa.array([r[2] for r in rows], pa.date32()),
    }), mode="replace")


def write_lists(lake: Lake, day: dt.date, lists: dict[int, list[int]],
                version: str = "v0001") -> None:
    rows = [(u, r, t) for u, ts in lists.items() for r, t in enumerate(ts, start=1)]
    lake.write(names.CONS_RECOMMENDATIONS, pa.table({
        names.SCORE_DATE: pa.array([day] * len(rows), pa.date32()),
        names.USER_ID: pa.array([r[0] for r in rows], pa.int64()),
        "rank": pa.array([r[1] for r in rows], pa.int64()),
        names.TRACK_ID: pa.array([r[2] for r in rows], pa.int64()),
        "model_version": pa.array([version] * len(rows), pa.string()),
    }), mode="replace_partition", partition={names.SCORE_DATE: day.isoformat()},
        partition_by=[names.SCORE_DATE])


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings.load(env={}, lake=tmp_path / "lake", online_horizon_days=2)


@pytest.fixture
def lake(settings) -> Lake:
    lake = Lake(settings.lake)
    write_tracks(lake, CATALOGUE, D3)
    write_listens(lake, HEARD, LATER)
    write_lists(lake, D0, LISTS)
    return lake


def only_row(table: pa.Table) -> dict:
    assert table.num_rows == 1, table.to_pylist()
    return table.to_pylist()[0]


def test_the_reference_scenario_matches_the_hand_computed_row(lake):
    row = only_row(measure(lake, [D0], horizon_days=2, through=D3))
    assert row[names.SCORE_DATE] == D0 and row["model_version"] == "v0001"
    assert (row["k"], row["horizon_days"], row["scored_users"], row["users"],
            row["new_pairs"]) == (2, 2, 4, 2, 2)
    assert row["precision_at_k"] == pytest.approx(0.25)
    assert row["recall_at_k"] == pytest.approx(0.5)
    assert row["hit_rate_at_k"] == pytest.approx(0.5)
    assert row["ndcg_at_k"] == pytest.approx(NDCG_RANK_2 / 2)
    assert row["popularity_precision_at_k"] == pytest.approx(0.5)
    assert row["popularity_recall_at_k"] == pytest.approx(1.0)
    assert row["popularity_hit_rate_at_k"] == pytest.approx(1.0)
    assert row["lift"] == pytest.approx(0.5)
    assert row["complete"] is True and row["days_observed"] == 2
    assert row["observed_through"] == D2


def test_a_partial_horizon_counts_only_the_days_ingested_and_says_so(lake):
    row = only_row(measure(lake, [D0], horizon_days=2, through=D1))
    # Only user 1's D1 listens are in; user 2's D2 listen is not yet.
    assert (row["users"], row["new_pairs"]) == (1, 1)
    assert row["precision_at_k"] == pytest.approx(0.5)
    assert row["popularity_precision_at_k"] == pytest.approx(0.5)
    assert row["lift"] == pytest.approx(1.0)
    assert row["complete"] is False and row["days_observed"] == 1
    assert row["observed_through"] == D1


def test_no_row_before_any_later_ingest_date(lake):
    assert measure(lake, [D0], horizon_days=2, through=D0).num_rows == 0


def test_perfect_lists_score_one_and_popularity_is_counted_on_the_same_users(lake, settings):
    # Serve each user exactly their new pairs (padded to k with a track they never play).
    write_lists(lake, D0, {1: [4, 6], 2: [3, 5]})
    row = only_row(measure(lake, [D0], horizon_days=2, through=D3))
    assert row["users"] == 2
    assert row["precision_at_k"] == pytest.approx(0.5)  # one new pair each, k = 2
    assert row["recall_at_k"] == row["hit_rate_at_k"] == row["ndcg_at_k"] == pytest.approx(1.0)
    assert row["popularity_precision_at_k"] == pytest.approx(0.5)
    assert row["lift"] == pytest.approx(1.0)


def test_lists_that_miss_every_new_pair_score_zero(lake):
    write_lists(lake, D0, {1: [5, 6], 2: [5, 6]})
    row = only_row(measure(lake, [D0], horizon_days=2, through=D3))
    assert row["users"] == 2
    for metric in ("precision_at_k", "recall_at_k", "hit_rate_at_k", "ndcg_at_k", "lift"):
        assert row[metric] == 0.0, metric
    assert row["popularity_hit_rate_at_k"] == pytest.approx(1.0)


def test_users_without_new_listens_are_not_counted_and_none_at_all_gives_null_metrics(
        tmp_path):
    lake = Lake(tmp_path / "lake")
    write_tracks(lake, CATALOGUE, D3)
    # Only re-listens, a track new to the catalogue, and a listen after the horizon.
    write_listens(lake, HEARD, [(1, 1, D1), (1, 7, D1), (2, 4, D4)])
    write_lists(lake, D0, LISTS)
    row = only_row(measure(lake, [D0], horizon_days=2, through=D4))
    assert (row["scored_users"], row["users"], row["new_pairs"]) == (4, 0, 0)
    assert row["precision_at_k"] is None and row["lift"] is None
    assert row["complete"] is True


def test_a_track_new_to_the_catalogue_is_excluded_even_when_served(tmp_path):
    lake = Lake(tmp_path / "lake")
    write_tracks(lake, CATALOGUE, D3)
    write_listens(lake, HEARD, [(1, 7, D1), (1, 4, D1)])
    write_lists(lake, D0, {1: [7, 4]})  # a list naming track 7 (not in S's catalogue)
    row = only_row(measure(lake, [D0], horizon_days=2, through=D3))
    assert (row["users"], row["new_pairs"]) == (1, 1)
    assert row["precision_at_k"] == pytest.approx(0.5)  # track 4 only
    assert row["recall_at_k"] == pytest.approx(1.0)


def test_two_model_versions_get_a_row_each(lake):
    write_lists(lake, D1, {1: [5, 6], 2: [3, 5]}, version="v0002")
    table = measure(lake, [D0, D1], horizon_days=2, through=D3)
    rows = {(r[names.SCORE_DATE], r["model_version"]): r for r in table.to_pylist()}
    assert set(rows) == {(D0, "v0001"), (D1, "v0002")}
    # D1: the new pairs after D1 within 2 days are user 2's track 3 (D2) only; user 1's
    # D1 listens were heard by D1. Listeners up to D1: track 1 -> 2, tracks 2, 3, 4, 7
    # -> 1, so popularity for user 2 (track 1 removed) is [2, 3]: a hit.
    d1 = rows[(D1, "v0002")]
    assert (d1["users"], d1["k"]) == (1, 2)
    assert d1["precision_at_k"] == pytest.approx(0.5)
    assert d1["ndcg_at_k"] == pytest.approx(1.0)
    assert d1["popularity_precision_at_k"] == pytest.approx(0.5)
    assert rows[(D0, "v0001")]["precision_at_k"] == pytest.approx(0.25)


def test_refresh_writes_then_a_rerun_of_the_same_day_changes_nothing(lake, settings):
    first = refresh(lake, settings)
    assert first.written and first.computed == [D0]
    assert first.observed_through == D3
    before = lake.to_arrow(TABLE)
    version = lake.version(TABLE)
    again = refresh(lake, settings)
    assert not again.written and again.computed == []  # complete and same lists
    assert lake.version(TABLE) == version
    full = refresh(lake, settings, full=True)
    assert full.computed == [D0] and not full.written  # recomputed, identical
    assert lake.to_arrow(TABLE).equals(before)
    assert lake.schema(TABLE).names == OUTCOMES_ARROW.names


def test_an_open_date_is_updated_as_days_arrive(tmp_path):
    settings = Settings.load(env={}, lake=tmp_path / "lake", online_horizon_days=2)
    lake = Lake(settings.lake)
    write_lists(lake, D0, LISTS)
    write_listens(lake, HEARD, [r for r in LATER if r[2] <= D1])
    write_tracks(lake, CATALOGUE, D1)  # built on D1
    refresh(lake, settings)
    row = read_outcomes(lake).iloc[0]
    assert (bool(row["complete"]), row["users"], row["days_observed"]) == (False, 1, 1)
    write_listens(lake, HEARD, [r for r in LATER if r[2] <= D2])
    write_tracks(lake, CATALOGUE, D2)  # built on D2: the horizon closes
    done = refresh(lake, settings)
    assert done.computed == [D0] and done.written
    row = read_outcomes(lake).iloc[0]
    assert (bool(row["complete"]), row["users"], row["days_observed"]) == (True, 2, 2)
    assert row["lift"] == pytest.approx(0.5)
    write_tracks(lake, CATALOGUE, D3)
    assert refresh(lake, settings).computed == []  # complete: not recomputed


def test_rescoring_a_date_recomputes_its_row(lake, settings):
    refresh(lake, settings)
    write_lists(lake, D0, {1: [4, 6], 2: [3, 5]})
    done = refresh(lake, settings)
    assert done.computed == [D0] and done.written
    assert read_outcomes(lake).iloc[0]["precision_at_k"] == pytest.approx(0.5)


def test_another_horizon_recomputes_every_date(lake, settings):
    refresh(lake, settings)
    wider = settings.replace(online_horizon_days=3)
    done = refresh(lake, wider)
    assert done.computed == [D0]
    row = read_outcomes(lake).iloc[0]
    # User 3's D3 listen (track 2, not served to them) now counts.
    assert (row["horizon_days"], row["users"]) == (3, 3)


def test_the_step_records_its_run(lake, settings):
    record = refresh_outcomes(settings)
    assert record.ok and record.pipeline == names.OUTCOMES
    assert record.details["computed"] == [D0.isoformat()]
    runs = lake.to_arrow(names.META_RUNS).to_pylist()
    assert [r["pipeline"] for r in runs] == [names.OUTCOMES]


def test_a_lake_without_recommendations_has_nothing_to_measure(tmp_path):
    settings = Settings.load(env={}, lake=tmp_path / "lake")
    lake = Lake(settings.lake)
    write_tracks(lake, CATALOGUE, D3)
    done = refresh(lake, settings)
    assert (done.computed, done.written, done.rows) == ([], False, 0)
    assert read_outcomes(lake).empty


# ------------------------------------------------------------------ kpis, report, alerts
def frame_of(rows: list[tuple]) -> pd.DataFrame:
    """Outcome rows: (day, version, users, precision, popularity precision, complete)."""
    out = []
    for day, version, users, p, pp, complete in rows:
        out.append({names.SCORE_DATE: day, "model_version": version, "k": 10,
                    "horizon_days": 7, "scored_users": 500, "users": users, "new_pairs": users,
                    "precision_at_k": p, "recall_at_k": p, "hit_rate_at_k": p, "ndcg_at_k": p,
                    "popularity_precision_at_k": pp, "popularity_recall_at_k": pp,
                    "popularity_hit_rate_at_k": pp, "lift": p / pp if pp else None,
                    "observed_through": day, "days_observed": 7 if complete else 1,
                    "complete": complete, "lists_fingerprint": "x"})
    return pd.DataFrame(out)


DAYS = [dt.date(2026, 4, 1) + dt.timedelta(days=n) for n in range(6)]


def test_the_lift_alert_fires_after_three_complete_dates_below_popularity():
    settings = Settings.load(env={})
    assert settings.online_lift_days == 3 and settings.online_horizon_days == 7
    below = frame_of([(DAYS[0], "v1", 100, 0.05, 0.04, True),   # lift 1.25
                      (DAYS[1], "v1", 100, 0.03, 0.04, True),
                      (DAYS[2], "v1", 100, 0.03, 0.04, True),
                      (DAYS[3], "v1", 100, 0.02, 0.04, True),
                      (DAYS[4], "v1", 100, 0.01, 0.04, False)])  # open: not counted
    [alert] = online_alerts(settings, below, "v1")
    assert alert.kind == ONLINE_LIFT and alert.severity == "warning"
    assert "does worse than popularity in production" in alert.message
    assert alert.details["score_dates"] == [str(d) for d in DAYS[1:4]]
    assert alert.details["lift"] == [0.75, 0.75, 0.5]
    # Another model's dates, a shorter streak, or a longer setting: no alert.
    assert online_alerts(settings, below, "v2") == []
    assert online_alerts(settings.replace(online_lift_days=4), below, "v1") == []
    assert online_alerts(settings, below, None) == []
    broken = below.copy()
    broken.loc[2, "precision_at_k"], broken.loc[2, "lift"] = 0.08, 2.0
    assert online_alerts(settings, broken, "v1") == []


def test_dates_with_too_few_users_neither_count_nor_break_the_streak():
    settings = Settings.load(env={}, online_lift_days=2)
    rows = frame_of([(DAYS[0], "v1", 100, 0.03, 0.04, True),
                     (DAYS[1], "v1", MIN_USERS - 1, 0.09, 0.01, True),  # too few: skipped
                     (DAYS[2], "v1", 100, 0.03, 0.04, True)])
    [alert] = online_alerts(settings, rows, "v1")
    assert alert.details["score_dates"] == [str(DAYS[0]), str(DAYS[2])]
    assert "too few users with new listens" in note(rows.iloc[1])
    assert note(rows.iloc[0]) == ""


@pytest.mark.parametrize("value", ["0", "-1", "367", "x"])
def test_the_settings_are_bounded(value):
    from lakehouse.errors import ConfigError

    for var in ("LAKEHOUSE_ONLINE_HORIZON_DAYS", "LAKEHOUSE_ONLINE_LIFT_DAYS"):
        with pytest.raises(ConfigError, match=var):
            Settings.load(env={var: value})


def test_kpis_show_the_outcomes_with_their_notes(lake, settings):
    refresh(lake, settings)
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "kpis", "--section",
                                      "outcomes"], env={"LAKEHOUSE_ONLINE_HORIZON_DAYS": "2"})
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Online outcomes per score date")
    line = next(x for x in result.output.splitlines() if x.startswith(str(D0)))
    assert "v0001" in line and "0.25" in line and "0.5" in line
    assert f"too few users with new listens to judge (2 < {MIN_USERS})" in line
    as_json = CliRunner().invoke(cli, ["--lake", str(settings.lake), "kpis", "--section",
                                       "outcomes", "--format", "json"])
    [row] = json.loads(as_json.output)["outcomes"]
    assert row["lift"] == pytest.approx(0.5) and row["users"] == 2


def test_the_outcomes_command_measures_and_says_what_it_did(lake, settings):
    run = ["--lake", str(settings.lake), "outcomes", "--horizon-days", "2"]
    first = CliRunner().invoke(cli, run)
    assert first.exit_code == 0, first.output
    assert f"Measured 1 score date(s) ({D0} .. {D0}) through ingest date {D3}" in first.output
    again = CliRunner().invoke(cli, run)
    assert again.output.startswith("No score date to measure")
    bad = CliRunner().invoke(cli, [*run[:3], "--horizon-days", "0"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


def test_the_report_charts_online_precision_against_popularity_with_the_version(
        lake, settings):
    write_lists(lake, D1, {1: [5, 6], 2: [3, 5]}, version="v0002")
    refresh(lake, settings)
    html = write_report(settings).read_text()
    assert 'id="chart-online_precision"' in html
    chart = html.split('id="chart-online_precision"')[1].split("</figure>")[0]
    assert "served v0001" in chart and "served v0002" in chart and "popularity" in chart
    assert "<script" not in html and "http" not in chart
    assert "favours the served model" in chart
    assert "too few (under 30) to judge the lists" in html


def test_the_alert_hook_never_fails_the_step(tmp_path):
    from lakehouse.monitor.alerts import _outcome_alerts

    assert _outcome_alerts(Settings.load(env={}, lake=tmp_path / "none")) == []
