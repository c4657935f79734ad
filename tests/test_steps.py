"""The step runner: lock, writable check, run records and alerts, the same for every step."""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from pathlib import Path

import pytest

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.context import RunContext, as_context
from lakehouse.errors import ConfigError, LakeError, LockedError, ModelError
from lakehouse.lake import Lake
from lakehouse.locking import lake_lock
from lakehouse.steps import run_step

DAY = dt.date(2026, 11, 26)


class Sinks:
    """Alert sinks that remember what they were given."""

    def __init__(self):
        self.runs: list = []
        self.jobs: list[tuple[str, str]] = []

    def runs_finished(self, records):
        self.runs.extend(records)

    def job_failed(self, job, message):
        self.jobs.append((job, message))


def unwritable_folder() -> Path | None:
    """An existing folder even root cannot write into (sysfs), if this machine has one."""
    folder = Path("/sys/kernel")
    if not folder.is_dir():
        return None
    try:
        (folder / ".lakehouse-probe").write_bytes(b"")
    except OSError:
        return folder
    os.unlink(folder / ".lakehouse-probe")
    return None


def context(lake: Path, **kw) -> RunContext:
    settings = Settings.load(env={}, lake=lake, lock_timeout=kw.pop("lock_timeout", 900))
    return RunContext.open(settings, date=DAY, alerts=Sinks(), **kw)


def runs(lake: Path) -> list[dict]:
    return Lake(lake, create=False).to_arrow(names.META_RUNS).to_pylist()


def test_a_started_record_is_appended_as_success_and_alerted(tmp_path):
    ctx = context(tmp_path / "lake")

    def body(run):
        record = run.start("models")
        record.records = 3
        return "done"

    assert run_step(ctx, names.TRAIN, body, create=True) == "done"
    (row,) = runs(tmp_path / "lake")
    assert (row["pipeline"], row["target"], row["status"], row["records"]) == \
        ("train", "models", "success", 3)
    assert row["run_date"] == DAY
    assert [r.target for r in ctx.alerts.runs] == ["models"] and ctx.alerts.jobs == []


def test_a_failing_step_records_its_failure_and_sends_job_failed(tmp_path):
    ctx = context(tmp_path / "lake")

    def body(run):
        run.start("models")
        raise ModelError("nothing to train on; run 'lakehouse build' first")

    with pytest.raises(ModelError):
        run_step(ctx, names.TRAIN, body, create=True)
    (row,) = runs(tmp_path / "lake")
    assert row["status"] == "failed" and "lakehouse build" in row["error"]
    assert ctx.alerts.jobs == [("train", "lakehouse train failed: nothing to train on; "
                                         "run 'lakehouse build' first")]
    assert ctx.alerts.runs == []


def test_a_bug_is_recorded_with_its_type_and_not_alerted_as_a_job_failure(tmp_path):
    ctx = context(tmp_path / "lake")

    def body(run):
        run.start("models")
        raise KeyError("oops")

    with pytest.raises(KeyError):
        run_step(ctx, names.TRAIN, body, create=True)
    (row,) = runs(tmp_path / "lake")
    assert row["error"] == "KeyError: 'oops'"
    assert ctx.alerts.jobs == []


def test_bad_options_are_not_alerted(tmp_path):
    ctx = context(tmp_path / "lake")
    with pytest.raises(ConfigError):
        run_step(ctx, names.BUILD, lambda run: (_ for _ in ()).throw(ConfigError("bad")),
                 create=True)
    assert ctx.alerts.jobs == []


def test_records_the_body_appended_are_alerted_once_and_not_appended_twice(tmp_path):
    ctx = context(tmp_path / "lake")

    def body(run):
        record = run.start("users")
        run.record(record.finish(names.FAILED, "HTTP 500"))

    run_step(ctx, names.INGEST, body, create=True)
    assert len(runs(tmp_path / "lake")) == 1
    assert [r.error for r in ctx.alerts.runs] == ["HTTP 500"]


def test_no_wait_fails_at_once_when_the_step_is_running(tmp_path):
    ctx = context(tmp_path / "lake", wait=False)
    called = []
    with lake_lock(ctx.settings.locks_dir, names.BUILD), \
            pytest.raises(LockedError, match="another 'build' run holds the lake lock"):
        run_step(ctx, names.BUILD, called.append, create=True)
    assert called == [] and ctx.alerts.jobs == []


@pytest.mark.slow
def test_every_step_waits_for_the_lock_then_gives_up_after_the_timeout(tmp_path):
    ctx = context(tmp_path / "lake", lock_timeout=0.6)
    for step in names.STEPS:
        t0 = time.monotonic()
        with lake_lock(ctx.settings.locks_dir, step), pytest.raises(LockedError):
            run_step(ctx, step, lambda run: None, create=True)
        assert time.monotonic() - t0 >= 0.5


def test_a_waiting_step_runs_once_the_lock_is_released(tmp_path):
    ctx = context(tmp_path / "lake", lock_timeout=30)
    done = []
    with lake_lock(ctx.settings.locks_dir, names.RECOMMEND):
        t = threading.Thread(target=lambda: done.append(
            run_step(ctx, names.RECOMMEND, lambda run: "scored", create=True)))
        t.start()
        t.join(0.5)
        assert t.is_alive() and done == []
    t.join(10)
    assert done == ["scored"]


@pytest.mark.parametrize("step", names.STEPS)
def test_every_step_refuses_a_read_only_lake_the_same_way(step):
    folder = unwritable_folder()
    if folder is None:
        pytest.skip("no unwritable folder on this machine")
    ctx = context(folder)
    called = []
    with pytest.raises(LakeError, match=f"lake folder {folder} is not writable"):
        run_step(ctx, step, called.append)
    assert called == []
    (job, message), = ctx.alerts.jobs
    assert job == step and message.startswith(f"lakehouse {step} failed: lake folder {folder} "
                                              "is not writable")


def test_a_missing_lake_is_refused_without_creating_it(tmp_path):
    ctx = context(tmp_path / "nolake")
    with pytest.raises(LakeError, match="no lake at"):
        run_step(ctx, names.RECOMMEND, lambda run: None)
    assert not (tmp_path / "nolake").exists()


def test_one_lake_handle_per_context(tmp_path):
    ctx = context(tmp_path / "lake")
    lake = ctx.lake(create=True)
    assert ctx.replace(date="2026-11-27").lake() is lake
    assert as_context(ctx, date=DAY).lake() is lake
    assert ctx.replace(date="2026-11-27").date == dt.date(2026, 11, 27)
    with pytest.raises(ConfigError, match="bad date"):
        ctx.replace(date="26/11/2026")


def test_plain_settings_get_the_settings_sinks(tmp_path):
    from lakehouse.context import NoSinks
    from lakehouse.monitor.sinks import SettingsSinks, step_context

    ctx = step_context(Settings.load(env={}, lake=tmp_path), date=DAY)
    assert ctx.alerts.settings.lake == tmp_path and ctx.date == DAY and ctx.wait
    # The core alone alerts nobody (it never imports the monitor); a context handed in
    # keeps the sinks its caller chose.
    assert isinstance(as_context(Settings.load(env={}, lake=tmp_path)).alerts, NoSinks)
    chosen = context(tmp_path / "lake")
    assert step_context(chosen) is chosen and not isinstance(chosen.alerts, SettingsSinks)


def _alerts_of(path: Path) -> list[tuple[str, str, str]]:
    import json

    out = []
    for line in path.read_text().splitlines():
        alert = json.loads(line)["alert"]
        # The same alert whoever ran the step; only the lake's path differs.
        out.append((alert["key"], alert["severity"],
                    alert["message"].replace(str(path.parent), "<dir>")))
    return out


def test_ingest_from_a_notebook_alerts_on_a_failed_endpoint_exactly_as_the_cli(tmp_path):
    from click.testing import CliRunner

    from lakehouse.cli import cli
    from lakehouse.ingest import ingest
    from lakehouse.mockapi.testing import running_mock_api

    notebook, command = tmp_path / "notebook", tmp_path / "cli"
    notebook.mkdir()
    command.mkdir()
    with running_mock_api(seed=3, users=60, tracks=80, listens=200,
                          fail_endpoint="listen_history") as api:
        env = {"LAKEHOUSE_API_URL": api.url, "LAKEHOUSE_MAX_RETRIES": "1",
               "LAKEHOUSE_BACKOFF_FACTOR": "0.01"}
        # What an analyst types in JupyterLab: settings from the environment, no CLI.
        settings = Settings.load(env={**env, "LAKEHOUSE_LAKE": str(notebook / "lake"),
                                      "LAKEHOUSE_ALERT_COMMAND":
                                          f"tee -a {notebook / 'alerts.jsonl'}"})
        runs = ingest(settings, date=DAY)
        assert [r.ok for r in runs] == [True, True, False]
        result = CliRunner().invoke(cli, ["--lake", str(command / "lake"), "ingest",
                                          "--date", str(DAY)],
                                    env={**env, "LAKEHOUSE_ALERT_COMMAND":
                                         f"tee -a {command / 'alerts.jsonl'}"})
        assert result.exit_code == 1
    from_notebook = _alerts_of(notebook / "alerts.jsonl")
    assert [key for key, *_ in from_notebook] == ["run_failed:ingest:listen_history"]
    assert from_notebook == _alerts_of(command / "alerts.jsonl")


@pytest.mark.parametrize("step", names.STEPS)
def test_every_step_function_refuses_a_read_only_lake_the_same_way(step):
    from lakehouse.ingest import ingest
    from lakehouse.recsys.score import recommend
    from lakehouse.recsys.train import train
    from lakehouse.zones.build import build

    folder = unwritable_folder()
    if folder is None:
        pytest.skip("no unwritable folder on this machine")
    fn = {names.INGEST: ingest, names.BUILD: build, names.TRAIN: train,
          names.RECOMMEND: recommend}[step]
    with pytest.raises(LakeError) as caught:
        fn(Settings.load(env={}, lake=folder), date=DAY)
    message = str(caught.value)
    assert message.startswith(f"lake folder {folder} is not writable (")
    assert message.endswith("); fix its permissions or point --lake elsewhere")


def test_progress_false_from_older_callers_means_no_callback(tmp_path):
    events = []
    ctx = context(tmp_path / "lake", progress=events.append)
    quiet = as_context(ctx, progress=False)
    assert quiet.progress is None and ctx.progress is not None
    assert quiet.lake(create=True) is not None
    assert as_context(Settings.load(env={}, lake=tmp_path), progress=True).progress is None


def test_no_function_in_the_package_is_longer_than_80_lines():
    import ast

    package = Path(__file__).resolve().parents[1] / "lakehouse"
    long = [f"{p.relative_to(package)}:{node.name} ({node.end_lineno - node.lineno + 1})"
            for p in package.rglob("*.py")
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > 80]
    assert long == []
