"""The command line: help, errors, and the foundation commands."""

from __future__ import annotations

import datetime as dt
import io
import json

import click
import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.lake import Lake
from tests.test_steps import unwritable_folder


def all_commands(group: click.Group, prefix=()):
    for name, cmd in sorted(group.commands.items()):
        yield (*prefix, name), cmd
        if isinstance(cmd, click.Group):
            yield from all_commands(cmd, (*prefix, name))


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def small_lake(tmp_path) -> Lake:
    lake = Lake(tmp_path / "lake")
    lake.write("raw.users", pa.table({
        "id": [1, 2, 3], "ingest_date": pa.array([dt.date(2026, 11, 1)] * 3, pa.date32())}),
        mode="replace_partition", partition_by=["ingest_date"],
        partition={"ingest_date": dt.date(2026, 11, 1)})
    return lake


def test_every_command_has_help_with_an_example(runner):
    commands = list(all_commands(cli))
    assert {"tables", "sql"} <= {path[0] for path, _ in commands}
    for path, _cmd in commands:
        result = runner.invoke(cli, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Example" in result.output, f"'lakehouse {' '.join(path)} --help' has no example"


def test_help_lists_the_commands_and_version(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    for name in cli.commands:
        assert name in result.output
    version = runner.invoke(cli, ["--version"])
    assert version.exit_code == 0 and "lakehouse, version" in version.output


def test_tables_lists_rows_and_versions(runner, small_lake):
    result = runner.invoke(cli, ["--lake", str(small_lake.root), "tables", "--format", "csv"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == "table,rows,files,size,version,last_modified,partitioned_by"
    assert lines[1].startswith("raw.users,3,1,")
    assert lines[1].endswith(",0," + lines[1].split(",")[5] + ",ingest_date")


def test_tables_on_an_empty_lake_says_what_to_do(runner, tmp_path):
    (tmp_path / "lake").mkdir()
    result = runner.invoke(cli, ["--lake", str(tmp_path / "lake"), "tables"])
    assert result.exit_code == 0
    assert "lakehouse ingest" in result.output


def test_sql_formats(runner, small_lake):
    args = ["--lake", str(small_lake.root), "sql", "SELECT count(*) AS n FROM raw.users"]
    table = runner.invoke(cli, args)
    assert table.exit_code == 0 and table.output.splitlines() == ["n", "-", "3"]
    as_json = runner.invoke(cli, [*args, "--format", "json"])
    assert json.loads(as_json.output) == [{"n": 3}]
    as_csv = runner.invoke(cli, [*args, "--format", "csv"])
    assert as_csv.output == "n\n3\n"


def test_sql_error_is_one_line_exit_1(runner, small_lake):
    result = runner.invoke(cli, ["--lake", str(small_lake.root), "sql", "SELECT * FROM raw.nope"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: query failed")
    assert result.output.count("\n") == 1
    assert "Traceback" not in result.output


@pytest.mark.parametrize("kind", ["file", "missing"])
def test_bad_lake_is_a_one_line_error(runner, tmp_path, kind):
    target = tmp_path / "thing"
    if kind == "file":
        target.write_text("not a lake")
    result = runner.invoke(cli, ["--lake", str(target), "tables"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1


def test_unwritable_lake_check(tmp_path, monkeypatch):
    from lakehouse.errors import LakeError

    lake = Lake(tmp_path / "lake")

    def deny(self, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("pathlib.Path.write_bytes", deny)
    with pytest.raises(LakeError, match="not writable"):
        lake.check_writable()


def test_usage_errors_keep_exit_code_2(runner):
    result = runner.invoke(cli, ["sql"])
    assert result.exit_code == 2


@pytest.mark.parametrize("command", [["ingest"], ["build"], ["train"], ["recommend"]])
def test_an_unwritable_lake_is_a_one_line_error_even_for_root(runner, command):
    folder = unwritable_folder()
    if folder is None:
        pytest.skip("no unwritable folder on this machine")
    result = runner.invoke(cli, ["--lake", str(folder), *command])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and result.output.count("\n") == 1
    assert "not writable" in result.output or "cannot create" in result.output


def test_a_failed_command_sends_a_job_failed_alert_without_creating_the_lake(
        runner, tmp_path, monkeypatch):
    received = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("LAKEHOUSE_ALERT_COMMAND", f"tee -a {received}")
    result = runner.invoke(cli, ["--lake", str(tmp_path / "nolake"), "recommend"])
    assert result.exit_code == 1
    alert = json.loads(received.read_text().splitlines()[0])
    assert alert["alert"]["key"] == "job_failed:recommend"
    assert "no lake at" in alert["text"]
    assert not (tmp_path / "nolake").exists()


def test_bad_options_are_not_alerted(runner, tmp_path, monkeypatch):
    received = tmp_path / "alerts.jsonl"
    monkeypatch.setenv("LAKEHOUSE_ALERT_COMMAND", f"tee -a {received}")
    result = runner.invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest", "songs"])
    assert result.exit_code == 1 and "unknown endpoint" in result.output
    assert not received.exists()


def test_sql_prints_utc_timestamps(runner, tmp_path):
    lake = Lake(tmp_path / "lake")
    at = dt.datetime(2026, 11, 26, 6, 30, tzinfo=dt.UTC)
    lake.write("meta.events", pa.table({"seen_at": pa.array([at], pa.timestamp("us", tz="UTC"))}),
               mode="append")
    result = runner.invoke(cli, ["--lake", str(lake.root), "sql", "SELECT seen_at FROM meta.events",
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"seen_at": "2026-11-26T06:30:00+00:00"}]


def test_examples_keep_their_lines(runner):
    result = runner.invoke(cli, ["ingest", "--help"])
    lines = result.output.splitlines()
    start = lines.index("  Example:")
    assert lines[start + 1].strip().startswith("lakehouse ingest --api-url")
    assert lines[start + 2].strip().startswith("lakehouse ingest tracks")


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_on_a_terminal_is_a_bar_per_task_with_its_message(monkeypatch):
    from lakehouse.cli import TerminalProgress
    from lakehouse.context import ProgressEvent

    err = _Terminal()
    monkeypatch.setattr("sys.stderr", err)
    render = TerminalProgress.for_stderr(None)
    for done in (1, 2, 3):
        render(ProgressEvent("ingest", "users", done, 3))
    render(ProgressEvent("ingest", "users", 3, 3, finished=True, message="ingest users: ok"))
    assert "users" in err.getvalue() and "100%" in err.getvalue()
    assert "ingest users: ok" in err.getvalue()
    assert render._open == {}  # the finished bar is closed


def test_progress_off_a_terminal_is_one_line_per_message(monkeypatch, capsys):
    from lakehouse.cli import TerminalProgress
    from lakehouse.context import ProgressEvent

    render = TerminalProgress.for_stderr(None)
    render(ProgressEvent("ingest", "users", 1, 3))
    render(ProgressEvent("train", "epochs", 1, 2, message="epoch 1/2  0.10s"))
    render(ProgressEvent("ingest", "users", 3, 3, finished=True, message="ingest users: ok"))
    assert capsys.readouterr().err == "epoch 1/2  0.10s\ningest users: ok\n"
    assert TerminalProgress.for_stderr(False) is None


def test_notebook_progress_draws_tqdm_bars(capsys):
    from lakehouse.context import ProgressEvent
    from lakehouse.progress import notebook_progress

    render = notebook_progress()
    render(ProgressEvent("ingest", "users", 1, 2))
    render(ProgressEvent("ingest", "users", 2, 2, finished=True, message="done"))
    err = capsys.readouterr().err
    assert "ingest users" in err and "2/2" in err and "done" in err


def test_no_library_module_but_the_cli_imports_click():
    import pathlib

    package = pathlib.Path(__file__).resolve().parents[1] / "lakehouse"
    offenders = [str(p.relative_to(package)) for p in package.rglob("*.py")
                 if p.name != "cli.py" and any(
                     line.strip().startswith(("import click", "from click"))
                     for line in p.read_text().splitlines())]
    assert offenders == []
