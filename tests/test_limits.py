"""Limits (issue 11, item 9): every setting is validated once, in Settings,
whatever its origin; --k and dates are bounded; a malformed URL is one line."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import MAX_K, Settings
from lakehouse.errors import ConfigError
from lakehouse.lake import Lake
from tests.conftest import copy_lake

BAD_ENV = [
    ("LAKEHOUSE_READ_TIMEOUT", "-1"), ("LAKEHOUSE_READ_TIMEOUT", "nan"),
    ("LAKEHOUSE_READ_TIMEOUT", "inf"), ("LAKEHOUSE_CONNECT_TIMEOUT", "0"),
    ("LAKEHOUSE_KPI_DAYS", "0"), ("LAKEHOUSE_LEARNING_RATE", "-1"),
    ("LAKEHOUSE_K", "1000000000"), ("LAKEHOUSE_HOLDOUT_SHARE", "1"),
    ("LAKEHOUSE_WORKERS", "0"), ("LAKEHOUSE_SEED", "-1"), ("LAKEHOUSE_EPOCHS", "0"),
    ("LAKEHOUSE_MAX_QUARANTINE_SHARE", "2"), ("LAKEHOUSE_RETRAIN_WEEKDAY", "7"),
    ("LAKEHOUSE_STALE_HOURS", "0"), ("LAKEHOUSE_API_URL", "http://[::1"),
]


def one_line(result, code: int) -> str:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


@pytest.mark.parametrize("var, value", BAD_ENV)
def test_an_environment_value_out_of_range_is_refused_as_settings_load(var, value):
    with pytest.raises(ConfigError, match=var):
        Settings.load(env={var: value})


@pytest.mark.parametrize("field, value", [("read_timeout", -1.0), ("kpi_days", 0),
                                          ("learning_rate", float("nan")), ("k", 10**9)])
def test_options_and_replace_are_validated_too(field, value):
    with pytest.raises(ConfigError, match=field):
        Settings.load(env={}, **{field: value})
    with pytest.raises(ConfigError, match=field):
        Settings.load(env={}).replace(**{field: value})


def test_kpi_days_zero_does_not_rewrite_daily_kpis(tmp_path, sample_lake):
    settings = copy_lake(sample_lake, tmp_path)
    lake = Lake(settings.lake)
    before = lake.version(names.CONS_DAILY_KPIS)
    result = CliRunner().invoke(cli, ["--lake", str(settings.lake), "build"],
                                env={"LAKEHOUSE_KPI_DAYS": "0"})
    assert "LAKEHOUSE_KPI_DAYS" in one_line(result, 1)
    assert lake.version(names.CONS_DAILY_KPIS) == before


@pytest.mark.parametrize("args", [
    ["recommend", "--k", "1000000000"], ["recommend", "--date", "9999-12-31"],
    ["train", "--date", "9999-12-31"], ["build", "--date", "0001-01-01"],
    ["ingest", "--date", "9999-12-31"]])
def test_huge_k_and_dates_out_of_range_are_usage_errors(tmp_path, args):
    one_line(CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), *args]), 2)
    assert not (tmp_path / "lake").exists()


def test_the_library_refuses_them_too(tmp_path):
    from lakehouse.recsys.score import recommend
    from lakehouse.zones.build import build

    settings = Settings.load(env={}, lake=tmp_path / "lake")
    with pytest.raises(ConfigError, match="from 1 to"):
        recommend(settings, k=10**9)
    with pytest.raises(ConfigError, match="out of range"):
        recommend(settings, date=dt.date(9999, 12, 31))
    with pytest.raises(ConfigError, match="out of range"):
        build(settings, date=dt.date.max)


def test_api_url_that_does_not_parse_is_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest",
                                      "--api-url", "http://[::1"])
    assert "bad API URL" in one_line(result, 1)


def test_k_is_bounded_by_the_catalogue(tmp_path, trained_lake, sample_days):
    from lakehouse.recsys.score import recommend

    settings = copy_lake(trained_lake, tmp_path)
    tracks = Lake(settings.lake).sql(f"SELECT count(*) FROM {names.STD_TRACKS}").fetchone()[0]
    assert tracks < MAX_K
    record = recommend(settings, k=MAX_K, date=sample_days[-1])
    assert record.ok and record.details["k"] == tracks
