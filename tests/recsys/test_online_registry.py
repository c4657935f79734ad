"""The registry sees the online outcomes: ``models show`` and the promotion gate's output."""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import Lake
from lakehouse.monitor.outcomes import OUTCOMES_ARROW, TABLE
from lakehouse.recsys.registry import Registry
from tests.conftest import copy_lake

QUICK = {"LAKEHOUSE_EPOCHS": "3", "LAKEHOUSE_COMPONENTS": "8", "LAKEHOUSE_TRAIN_TRIALS": "1",
         "LAKEHOUSE_TRAIN_THREADS": "1", "LAKEHOUSE_ALERT_WEBHOOK": "",
         "LAKEHOUSE_ALERT_COMMAND": ""}


def outcome_rows(version: str, lifts: list[float], start: dt.date) -> pa.Table:
    rows = []
    for n, lift in enumerate(lifts):
        day = start + dt.timedelta(days=n)
        rows.append({names.SCORE_DATE: day, "model_version": version, "k": 10,
                     "horizon_days": 7, "scored_users": 300, "users": 120, "new_pairs": 200,
                     "precision_at_k": 0.02 * lift, "recall_at_k": 0.1, "hit_rate_at_k": 0.2,
                     "ndcg_at_k": 0.05, "popularity_precision_at_k": 0.02,
                     "popularity_recall_at_k": 0.1, "popularity_hit_rate_at_k": 0.2,
                     "lift": lift, "observed_through": day + dt.timedelta(days=7),
                     "days_observed": 7, "complete": True, "lists_fingerprint": "f"})
    return pa.Table.from_pylist(rows, schema=OUTCOMES_ARROW)


@pytest.fixture
def lake_with_outcomes(trained_lake, tmp_path):
    settings = copy_lake(trained_lake, tmp_path)
    champion = Registry(settings.models_dir).alias(names.CHAMPION)
    Lake(settings.lake).write(TABLE, pa.concat_tables([
        outcome_rows(champion, [1.5, 0.8, 0.7, 0.6], dt.date(2026, 1, 1)),
        outcome_rows("v9999", [2.0], dt.date(2026, 2, 1))]), mode="replace")
    return settings, champion


def test_models_show_gives_the_online_metrics_beside_the_holdout(lake_with_outcomes):
    settings, champion = lake_with_outcomes
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "models", "show",
                                      "champion"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["version"] == champion
    assert data["metrics"]["model"]["precision_at_10"] is not None  # the holdout
    online = data["online"]
    assert [r["score_date"] for r in online] == ["2026-01-01", "2026-01-02", "2026-01-03",
                                                 "2026-01-04"]  # not v9999's date
    assert [r["lift"] for r in online] == [1.5, 0.8, 0.7, 0.6]
    assert online[0]["users"] == 120 and online[0]["complete"] is True
    assert list(data).index("online") == list(data).index("metrics") + 1


def test_models_show_of_a_version_that_served_nothing_has_no_online_rows(trained_lake):
    result = CliRunner().invoke(cli, ["--lake", str(trained_lake.lake), "models", "show",
                                      "champion"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["online"] == []


@pytest.mark.slow
def test_the_gate_output_states_the_champions_recent_online_lift(lake_with_outcomes):
    settings, champion = lake_with_outcomes
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "train", "--budget", "2s"],
                                env=QUICK)
    assert result.exit_code == 0, result.output
    assert (f"in production: {champion} online lift over popularity 0.80, 0.70, 0.60 on the "
            "last 3 complete score date(s) 2026-01-02 .. 2026-01-04") in result.output


def test_an_outcomes_run_alerts_when_the_champion_trails_popularity(lake_with_outcomes):
    from lakehouse.monitor.alerts import notify_runs, read_alerts
    from lakehouse.monitor.outcomes import ONLINE_LIFT
    from lakehouse.runlog import RunRecord

    settings, champion = lake_with_outcomes
    record = RunRecord(names.OUTCOMES, TABLE, dt.date(2026, 1, 12)).finish(names.SUCCESS)
    sent = notify_runs(settings, [record])
    [alert] = [a for a in sent if a.kind == ONLINE_LIFT]
    assert alert.details["model_version"] == champion
    assert alert.details["score_dates"] == ["2026-01-02", "2026-01-03", "2026-01-04"]
    assert any(row["kind"] == ONLINE_LIFT for row in read_alerts(settings))
