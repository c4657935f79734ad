"""Shared fixtures.

The sample lake is built the way a user builds theirs: the real ``ingest``
against the bundled mock API on loopback, for three simulated days, then the
real ``build``. Fixtures are layered so each test asks for only what it needs:

- ``mock_api``: a small realistic mock API (admin route on) for the session;
- ``raw_lake``: settings of a lake with three ingested days (raw zone only);
- ``sample_lake``: a copy of it with the standardized and consumption zones;
- ``trained_lake``: a copy of that with a champion model and recommendations.

Tests that change a lake must copy it first (``copy_lake``), never mutate the
session fixtures.
"""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from lakehouse.config import Settings

SAMPLE_SIZE = {"users": 300, "tracks": 400, "listens": 4000}
SAMPLE_DAYS = 3


@pytest.fixture(scope="session")
def mock_api():
    """A running realistic mock API on loopback, small, admin route enabled."""
    from lakehouse.mockapi.testing import running_mock_api

    with running_mock_api(seed=7, admin=True, **SAMPLE_SIZE) as handle:
        yield handle


@pytest.fixture(scope="session")
def sample_days(mock_api) -> list[dt.date]:
    """The simulated dates ingested into the sample lake, oldest first."""
    end = mock_api.config.end
    return [end - dt.timedelta(days=n) for n in range(SAMPLE_DAYS - 1, -1, -1)]


def settings_for(lake: Path, api_url: str = "http://127.0.0.1:9", **kw) -> Settings:
    """Settings for a test lake, isolated from the caller's environment."""
    return Settings.load(env={}, lake=lake, api_url=api_url, **kw)


@pytest.fixture(scope="session")
def raw_lake(tmp_path_factory, mock_api, sample_days) -> Settings:
    """Settings of a lake holding three days of raw data ingested over HTTP."""
    from lakehouse.ingest import ingest

    settings = settings_for(tmp_path_factory.mktemp("raw") / "lake", mock_api.url, workers=4)
    for day in sample_days:
        mock_api.set_as_of(day)
        runs = ingest(settings, date=day)
        assert all(r.ok for r in runs), [r.error for r in runs]
    mock_api.set_as_of(mock_api.config.end)
    return settings


def copy_lake(settings: Settings, dest: Path) -> Settings:
    """A private copy of a fixture lake, for tests that write to it."""
    shutil.copytree(settings.lake, dest / "lake")
    return settings.replace(lake=dest / "lake")


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory, raw_lake, sample_days) -> Settings:
    """Settings of a lake with raw, standardized and consumption zones."""
    from lakehouse.zones.build import build

    settings = copy_lake(raw_lake, tmp_path_factory.mktemp("sample"))
    build(settings, date=sample_days[-1])
    return settings


@pytest.fixture(scope="session")
def trained_lake(tmp_path_factory, sample_lake, sample_days) -> Settings:
    """Settings of a sample lake with a champion model and recommendations."""
    from lakehouse.recsys.score import recommend
    from lakehouse.recsys.train import train

    settings = copy_lake(sample_lake, tmp_path_factory.mktemp("trained"))
    # One trial per family and one thread: a quick, reproducible selection.
    settings = settings.replace(epochs=10, components=16, train_trials=1, train_threads=1)
    train(settings, promote="force", date=sample_days[-1])
    recommend(settings, date=sample_days[-1])
    return settings


@pytest.fixture
def lake_settings(tmp_path) -> Settings:
    """Settings of an empty lake in a temporary folder."""
    return settings_for(tmp_path / "lake")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (``lakehouse[spark]`` and Java 17).

    Skipped where PySpark or Java is missing, except in CI, which installs both.
    """
    import os

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        if os.environ.get("CI"):
            pytest.fail("CI must install a Java 17 runtime for the Spark tests")
        pytest.skip("no Java runtime for Spark")
    if os.environ.get("CI"):
        import pyspark  # noqa: F401 (CI installs lakehouse[spark]: fail, never skip)
    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    from lakehouse.zones.spark import LOCAL_CONF

    builder = SparkSession.builder.master("local[2]").appName("lakehouse tests")
    # Small data: few shuffle partitions, no whole-stage code generation (compiling
    # it costs more than it saves on a few thousand rows), a JIT that warms up fast.
    conf = LOCAL_CONF | {"spark.sql.shuffle.partitions": "2",
                         "spark.sql.codegen.wholeStage": "false",
                         "spark.driver.extraJavaOptions":
                             LOCAL_CONF["spark.driver.extraJavaOptions"] + " -XX:TieredStopAtLevel=1"}
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
