"""The whole pipeline, as a user runs it, on data of a real listening data set's shape.

A hetrec-like data set (``tests/hetrec_like.py``: one record per user holding ~49 items,
Zipf popularity, latent taste, noise metadata, one timestamp for everything, dangling and
repeated ids) and the reference profile (then a restart with re-drawn data) are served by
the real HTTP server on loopback; ``ingest``, ``build``, ``train``, ``recommend`` and
``status`` run through the CLI.
"""

from __future__ import annotations

import time

import pyarrow.compute as pc
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import open_lake
from lakehouse.mockapi.testing import running_mock_api
from lakehouse.recsys.registry import Registry
from tests import hetrec_like

pytestmark = pytest.mark.slow

K = 10
TRAIN = ("train", "--budget", "20s", "--trials", "3", "--epochs", "10")


@pytest.fixture
def run(tmp_path, monkeypatch):
    for var in ("LAKEHOUSE_EPOCHS", "LAKEHOUSE_COMPONENTS", "LAKEHOUSE_ALERT_WEBHOOK",
                "LAKEHOUSE_ALERT_COMMAND", "LAKEHOUSE_API_URL", "LAKEHOUSE_LAKE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LAKEHOUSE_TRAIN_THREADS", "1")
    lake = tmp_path / "lake"

    def invoke(*args: str, ok: bool = True):
        result = CliRunner().invoke(cli, ["--lake", str(lake), *args])
        if ok:
            assert result.exit_code == 0, (args, result.output, result.exception)
        return result

    invoke.lake = lake
    return invoke


def champion_of(lake_path):
    registry = Registry(lake_path / "models")
    version = registry.alias("champion")
    assert version is not None, "no champion"
    return registry.get(version)


def pipeline(run, url: str) -> dict[str, str]:
    out = {}
    for step in (("ingest", "--api-url", url), ("build",), TRAIN, ("recommend", "--k", str(K)),
                 ("status",)):
        out[step[0]] = run(*step).output
    return out


def check_recommendations(lake_path) -> int:
    """Every known user has K distinct unheard tracks; returns the number of users."""
    lake = open_lake(lake_path)
    recs = lake.to_arrow(names.CONS_RECOMMENDATIONS)
    heard = set()
    for table in (names.STD_LISTENS, names.CONS_INTERACTIONS):
        t = lake.to_arrow(table).select([names.USER_ID, names.TRACK_ID])
        heard |= set(zip(*(t.column(c).to_pylist() for c in t.column_names), strict=True))
    pairs = list(zip(recs.column(names.USER_ID).to_pylist(),
                     recs.column(names.TRACK_ID).to_pylist(), strict=True))
    assert not heard & set(pairs), "an already-heard track was recommended"
    assert len(set(pairs)) == len(pairs)
    users = set(lake.to_arrow(names.CONS_USER_FEATURES).column(names.USER_ID).to_pylist())
    users |= {u for u, _ in heard if u is not None}
    counts = pc.value_counts(recs.column(names.USER_ID)).to_pylist()
    assert {c["values"] for c in counts} == users
    assert {c["counts"] for c in counts} == {K}
    return len(users)


def test_hetrec_like_data_end_to_end(run):
    tables = hetrec_like.tables(users=500, items=4000, seed=3)
    started = time.monotonic()
    with running_mock_api(tables=tables, admin=False) as api:
        out = pipeline(run, api.url)
    seconds = time.monotonic() - started
    champion = champion_of(run.lake)
    metrics = champion.metrics
    model, base = metrics["model"]["precision_at_10"], metrics["baseline"]["precision_at_10"]
    print(f"hetrec-like 500x4000: champion {champion.params['candidate']} p@10 {model:.4f}, "
          f"popularity {base:.4f}, pipeline {seconds:.0f}s")
    assert "PROMOTED to champion" in out["train"]
    assert champion.params["family"] != "popularity" and model > base, out["train"]
    assert check_recommendations(run.lake) == 500
    assert seconds < 240


def test_reference_profile_then_a_restart_with_redrawn_data(run):
    with running_mock_api(profile="reference", users=1000, tracks=1000, seed=1,
                          admin=False) as api:
        pipeline(run, api.url)
    champion_of(run.lake)
    first = check_recommendations(run.lake)
    # The reference server draws a new data set at each start: other ids, other lists.
    with running_mock_api(profile="reference", users=1000, tracks=1000, seed=2,
                          admin=False) as api:
        ingested = run("ingest", "--api-url", api.url, ok=False)
        assert ingested.exit_code in (0, 1)
        assert "Traceback" not in ingested.output
        if ingested.exit_code:
            assert ingested.output.startswith("Error: ") or "failed" in ingested.output
        for step in (("build",), TRAIN, ("recommend", "--k", str(K)), ("status",)):
            result = run(*step, ok=False)
            assert "Traceback" not in result.output, (step, result.output)
            assert result.exit_code == 0 or result.output.count("\n") <= 2, (step, result.output)
    assert check_recommendations(run.lake) >= first
