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

Under pytest-xdist (``make test`` runs ``-n auto``) each worker is its own
process with its own session: the three lakes are then built once per test run,
by whichever worker asks first, under a file lock in the run's shared temporary
folder, and every worker reads a private copy (a lake holds no absolute path
and copying is what the tests do anyway). The mock API is cheap and seeded, so
each worker runs its own and its lakes point at it.

Tests that need a Spark session are marked ``spark`` here, so ``make
test-fast`` can leave them out with the notebooks and the ``slow`` tests, and
put in one xdist group, so one worker starts Spark, not every worker; the
tests of a module that use a module-scoped fixture are grouped the same way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.config import Settings

SAMPLE_SIZE = {"users": 300, "tracks": 400, "listens": 4000}
SAMPLE_DAYS = 3


# tryfirst: xdist's own hook (its worker plugin is registered after this conftest, so it
# would run first) turns the xdist_group marks into node ids; marks added after it are
# ignored and every worker would build the grouped tests' fixtures again.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)
            # One worker runs every Spark test (with --dist loadgroup): each worker that
            # ran one would start its own JVM and Spark session (40-60 s of CPU here).
            item.add_marker(pytest.mark.xdist_group("spark"))
        elif _uses_a_module_fixture(item):
            # Likewise a module's own fixture (a served lake, the bad-input lakes) is
            # made once if one worker runs the module's tests that use it.
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def _uses_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    return info is not None and any(
        d.scope == "module" for defs in info.name2fixturedefs.values() for d in defs)


@contextlib.contextmanager
def _run_lock(root: Path, name: str) -> Iterator[None]:
    with open(root / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def shared_lake(tmp_path_factory: pytest.TempPathFactory, name: str,
                make: Callable[[Path], None]) -> Path:
    """A private copy of a lake that ``make(path)`` builds once per test run.

    Without xdist the lake is built in place. Under xdist the first worker to
    ask builds it in the folder all workers of the run share, holding a file
    lock so the others wait, and each worker copies it.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        path = tmp_path_factory.mktemp(name) / "lake"
        make(path)
        return path
    root = tmp_path_factory.getbasetemp().parent / "shared-lakes"
    root.mkdir(exist_ok=True)
    built = root / name / "lake"
    with _run_lock(root, name):
        if not (root / f"{name}.done").exists():
            # A worker that failed half way left a partial lake: start afresh.
            shutil.rmtree(root / name, ignore_errors=True)
            make(built)
            (root / f"{name}.done").touch()
    mine = tmp_path_factory.mktemp(name) / "lake"
    shutil.copytree(built, mine)
    return mine


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


def fresh_python(code: str) -> subprocess.CompletedProcess:
    """Run ``code`` in a new Python process of this checkout, with no LAKEHOUSE_ setting.

    For what one process must (not) load or print: the test process has imported
    everything already. Fails the test when the process fails.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def settings_for(lake: Path, api_url: str = "http://127.0.0.1:9", **kw) -> Settings:
    """Settings for a test lake, isolated from the caller's environment."""
    return Settings.load(env={}, lake=lake, api_url=api_url, **kw)


@pytest.fixture(scope="session")
def raw_lake(tmp_path_factory, mock_api, sample_days) -> Settings:
    """Settings of a lake holding three days of raw data ingested over HTTP."""
    from lakehouse.ingest import ingest

    def make(path: Path) -> None:
        settings = settings_for(path, mock_api.url, workers=4)
        try:
            for day in sample_days:
                mock_api.set_as_of(day)
                runs = ingest(settings, date=day)
                assert all(r.ok for r in runs), [r.error for r in runs]
        finally:
            mock_api.set_as_of(mock_api.config.end)

    path = shared_lake(tmp_path_factory, "raw", make)
    return settings_for(path, mock_api.url, workers=4)


def copy_lake(settings: Settings, dest: Path) -> Settings:
    """A private copy of a fixture lake, for tests that write to it."""
    shutil.copytree(settings.lake, dest / "lake")
    return settings.replace(lake=dest / "lake")


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory, raw_lake, sample_days) -> Settings:
    """Settings of a lake with raw, standardized and consumption zones."""
    from lakehouse.zones.build import build

    def make(path: Path) -> None:
        shutil.copytree(raw_lake.lake, path)
        build(raw_lake.replace(lake=path), date=sample_days[-1])

    return raw_lake.replace(lake=shared_lake(tmp_path_factory, "sample", make))


@pytest.fixture(scope="session")
def trained_lake(tmp_path_factory, sample_lake, sample_days) -> Settings:
    """Settings of a sample lake with a champion model and recommendations."""
    from lakehouse.recsys.score import recommend
    from lakehouse.recsys.train import train

    # One trial per family and one thread: a quick, reproducible selection.
    settings = sample_lake.replace(epochs=10, components=16, train_trials=1, train_threads=1)

    def make(path: Path) -> None:
        shutil.copytree(sample_lake.lake, path)
        train(settings.replace(lake=path), promote="force", date=sample_days[-1])
        recommend(settings.replace(lake=path), date=sample_days[-1])

    return settings.replace(lake=shared_lake(tmp_path_factory, "trained", make))


@pytest.fixture
def lake_settings(tmp_path) -> Settings:
    """Settings of an empty lake in a temporary folder."""
    return settings_for(tmp_path / "lake")


@pytest.fixture(scope="session")
def spark():
    """One local Spark session for the whole test run (``lakehouse[spark]`` and Java 17).

    Skipped where PySpark or Java is missing, except in CI, which installs both.
    """
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
