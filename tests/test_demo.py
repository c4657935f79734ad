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
    assert len(result.days) == 3 and len(lines) == 6
    # Issue 22: the demo trains with its own short search budget, and says so.
    assert lines[1].startswith("Training budget: 5 s of search per training (the demo's own")
    assert result.report.is_file() and result.report.stat().st_size > 10_000
    assert Registry(settings.models_dir).alias("champion") == result.champion is not None
    table = "\n".join(result.candidates_lines())
    for family in ("popularity", "recent_popularity", "item_knn", "ease", "als", "lightfm"):
        assert f"  {family} " in table
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


@pytest.mark.parametrize("content", ["thesis", "hidden", "nested"])
def test_demo_refuses_a_folder_of_other_files_and_deletes_nothing(tmp_path, content):
    # Issue 11, item 2: a thesis folder passed as --lake lost all its files.
    root = tmp_path / "thesis"
    root.mkdir()
    files = {"thesis": "chapter1.tex", "hidden": ".git", "nested": "figures/plot.png"}
    target = root / files[content]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("years of work")
    (root / "README.md").write_text("mine")
    with pytest.raises(LakeError, match="nothing was deleted"):
        prepare_demo_lake(root)
    assert target.read_text() == "years of work" and (root / "README.md").exists()
    assert not (root / MARKER).exists()


def test_demo_cli_refusal_is_one_line(tmp_path):
    from click.testing import CliRunner

    from lakehouse.cli import cli

    root = tmp_path / "thesis"
    root.mkdir()
    (root / "notes.txt").write_text("keep")
    result = CliRunner().invoke(cli, ["--lake", str(root), "demo", "--days", "3"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert (root / "notes.txt").read_text() == "keep"


def test_demo_clears_an_empty_folder_or_its_own_lake(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_demo_lake(empty)
    assert (empty / MARKER).exists()
    (empty / "raw").mkdir()
    (empty / "stray.txt").write_text("demo output")
    prepare_demo_lake(empty)
    assert sorted(p.name for p in empty.iterdir()) == [MARKER]
    fresh = tmp_path / "new"
    prepare_demo_lake(fresh)
    assert (fresh / MARKER).exists()
