"""Every command works on a lake whose path has a space, a non-ASCII character
or a quote (issue 11, item 4: delta-rs's file URIs are percent-encoded, and
DuckDB found no files)."""

from __future__ import annotations

import shutil

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.lake import Lake

ODD = ["my lake", "lakeé", "it's a lake"]


def invoke(lake, *args, env=None):
    result = CliRunner().invoke(cli, ["--lake", str(lake), *args], env=env or {})
    assert "Traceback" not in result.output and result.exception is None \
        or isinstance(result.exception, SystemExit), (args, result.output, result.exception)
    return result


@pytest.mark.parametrize("name", ODD)
def test_reads_work_on_an_odd_lake_path(tmp_path, sample_lake, name):
    target = tmp_path / name
    shutil.copytree(sample_lake.lake, target)
    lake = Lake(target, create=False)
    assert lake.sql(f"SELECT count(*) FROM {names.STD_USERS}").fetchone()[0] > 0
    assert lake.table(names.RAW_USERS).count().execute() > 0
    tables = invoke(target, "tables")
    assert tables.exit_code == 0, tables.output
    result = invoke(target, "sql", f"SELECT count(*) AS n FROM {names.STD_LISTENS}",
                    "--format", "csv")
    assert result.exit_code == 0 and int(result.output.split()[1]) > 0, result.output


@pytest.mark.slow
def test_every_command_works_on_an_odd_lake_path(tmp_path, trained_lake, mock_api, sample_days):
    target = tmp_path / "my lakeé's"
    shutil.copytree(trained_lake.lake, target)
    day = str(sample_days[-1])
    steps = [
        ("ingest", "users", "--api-url", mock_api.url, "--date", day, "--no-progress"),
        ("build", "--date", day),
        ("train", "--date", day, "--epochs", "2", "--components", "8", "--trials", "1",
         "--promote", "never"),
        ("recommend", "--date", day),
        ("tables",),
        ("sql", f"SELECT count(*) FROM {names.CONS_RECOMMENDATIONS}"),
        ("kpis", "--section", "daily"),
        ("report", "--out", str(tmp_path / "report.html")),
        ("models", "list"),
        ("models", "show", "champion"),
        ("alert", "--limit", "2"),
    ]
    for args in steps:
        result = invoke(target, *args)
        assert result.exit_code == 0, (args, result.output)
    status = invoke(target, "status", "--format", "json")
    assert status.exit_code in (0, 1)
    assert "unreadable" not in status.output and "No files found" not in status.output


@pytest.mark.parametrize("name", ["lake[1]", "lake]", "a^b", "a|b", "a\\b", "my%20lake"])
def test_a_path_delta_rs_cannot_take_is_refused_in_one_line(tmp_path, name):
    # delta-rs panicked ("Invalid object store url") or wrote elsewhere (%20 decoded).
    from lakehouse.errors import LakeError

    with pytest.raises(LakeError, match="cannot be stored under"):
        Lake(tmp_path / name)
    for args in (("tables",), ("ingest", "--api-url", "http://127.0.0.1:9")):
        result = invoke(tmp_path / name, *args)
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("args", [["--lake", "", "ingest"], ["--lake", "  ", "tables"],
                                  ["--lake", "", "drop-date", "ingest", "--date",
                                   "2026-11-26"]])
def test_an_empty_lake_path_is_refused_and_nothing_lands_in_the_working_directory(
        tmp_path, monkeypatch, args):
    # Issue 21: --lake "" wrote raw/, history/ and meta/ into the working directory.
    from click.testing import CliRunner

    from lakehouse.cli import cli
    from lakehouse.config import Settings
    from lakehouse.errors import ConfigError, LakeError
    from lakehouse.lake import Lake

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, args, env={"LAKEHOUSE_LAKE": None})
    assert result.exit_code == 1 and "is empty" in result.output, result.output
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(LakeError, match="empty"):
        Lake("")
    with pytest.raises(ConfigError, match="empty"):
        Settings.load(env={}, lake="")
