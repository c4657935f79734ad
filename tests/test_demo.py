"""The demo: the whole daily job over simulated days, on a small mock."""

from __future__ import annotations

import pytest

from lakehouse import names
from lakehouse.demo import MARKER, prepare_demo_lake, run_demo
from lakehouse.errors import LakeError
from lakehouse.lake import Lake
from lakehouse.monitor.status import status
from lakehouse.recsys.registry import Registry
from tests.conftest import settings_for


@pytest.mark.slow
def test_demo_runs_every_step_and_leaves_a_healthy_lake(tmp_path):
    settings = settings_for(tmp_path / "lake", epochs=5, components=16)
    lines: list[str] = []
    result = run_demo(settings, days=3, echo=lines.append, users=200, tracks=300, listens=2500)
    assert not result.failed_steps
    assert len(result.days) == 3 and len(lines) == 5
    assert result.report.is_file() and result.report.stat().st_size > 10_000
    assert Registry(settings.models_dir).alias("champion") == result.champion is not None
    lake = Lake(settings.lake)
    last = result.days[-1]
    scored = lake.sql(f"SELECT count(DISTINCT user_id) FROM {names.CONS_RECOMMENDATIONS} "
                      f"WHERE score_date = DATE '{last}'").fetchone()[0]
    users = lake.sql(f"SELECT count(*) FROM {names.STD_USERS}").fetchone()[0]
    assert scored == users
    ingested = lake.sql(f"SELECT DISTINCT ingest_date FROM {names.RAW_USERS} ORDER BY 1")
    assert [d for (d,) in ingested.fetchall()] == result.days
    assert status(settings).healthy


def test_demo_refuses_a_lake_it_did_not_create(tmp_path):
    root = tmp_path / "lake"
    (root / "raw" / "users").mkdir(parents=True)
    with pytest.raises(LakeError, match="demo did not create"):
        prepare_demo_lake(root)
    assert (root / "raw" / "users").is_dir()


def test_demo_starts_its_own_lake_afresh_and_keeps_the_repo_files(tmp_path):
    root = tmp_path / "lake"
    root.mkdir()
    (root / "README.md").write_text("zones")
    (root / MARKER).write_text("")
    (root / "raw" / "users").mkdir(parents=True)
    prepare_demo_lake(root)
    assert sorted(p.name for p in root.iterdir()) == [MARKER, "README.md"]
