"""Ingest does not trust the source (issue 11): an empty answer, a lying
envelope, echoed secrets and colliding field names, each against a scripted API."""

from __future__ import annotations

import datetime as dt
import json
import sys

import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.ingest import ingest
from lakehouse.lake import Lake
from lakehouse.monitor.alerts import notify_runs

DAY = dt.date(2026, 11, 26)
NEXT = DAY + dt.timedelta(days=1)


def settings(tmp_path, api, **kw) -> Settings:
    opts = {"workers": 3, "max_retries": 1, "backoff_factor": 0.01, "backoff_max": 0.05,
            "connect_timeout": 1.0, "read_timeout": 3.0, **kw}
    return Settings.load(env={}, lake=tmp_path / "lake", api_url=api.url, **opts)


def count(s: Settings, table: str, date: dt.date) -> int:
    lake = Lake(s.lake, create=False)
    return lake.sql(f"SELECT count(*) FROM {table} WHERE ingest_date = DATE '{date}'"
                    ).fetchone()[0]


def alert_sink(tmp_path) -> tuple[str, object]:
    out = tmp_path / "alerts.jsonl"
    command = f"{sys.executable} -c \"import sys; open({str(out)!r}, 'a').write(sys.stdin.read())\""
    return command, out


# ---------------------------------------------------------------- item 3: empty answers
@pytest.mark.parametrize("date", [DAY, NEXT], ids=["same-day", "next-day"])
def test_an_empty_answer_does_not_replace_a_good_snapshot(tmp_path, fake_api, date):
    api = fake_api()
    command, out = alert_sink(tmp_path)
    s = settings(tmp_path, api, alert_command=command)
    assert all(r.ok for r in ingest(s, ["users"], date=DAY, progress=False))
    version = Lake(s.lake).version(names.RAW_USERS)
    api.data["users"] = []
    [run] = ingest(s, ["users"], date=date, progress=False)
    assert not run.ok
    assert "served 0 users records" in run.error and "--allow-empty" in run.error
    assert Lake(s.lake).version(names.RAW_USERS) == version
    assert count(s, names.RAW_USERS, DAY) == 250
    runs = Lake(s.lake).sql("SELECT status, error FROM meta.runs ORDER BY started_at").fetchall()
    assert runs[-1][0] == names.FAILED and "served 0" in runs[-1][1]
    notify_runs(s, [run])
    sent = [json.loads(line) for line in out.read_text().splitlines()]
    assert sent[-1]["alert"]["kind"] == "run_failed" and "served 0" in sent[-1]["text"]


def test_allow_empty_accepts_an_empty_answer(tmp_path, fake_api):
    api = fake_api()
    s = settings(tmp_path, api)
    ingest(s, ["users"], date=DAY, progress=False)
    api.data["users"] = []
    runner = CliRunner()
    base = ["--lake", str(s.lake), "ingest", "users", "--api-url", api.url,
            "--date", str(DAY), "--no-progress"]
    refused = runner.invoke(cli, base, env={"LAKEHOUSE_MAX_RETRIES": "1"})
    assert refused.exit_code == 1 and "served 0" in refused.output
    accepted = runner.invoke(cli, [*base, "--allow-empty"], env={"LAKEHOUSE_MAX_RETRIES": "1"})
    assert accepted.exit_code == 0, accepted.output
    assert count(s, names.RAW_USERS, DAY) == 0


def test_an_endpoint_empty_from_the_start_is_fine(tmp_path, fake_api):
    api = fake_api()
    api.data["users"] = []
    s = settings(tmp_path, api)
    [run] = ingest(s, ["users"], date=DAY, progress=False)
    assert run.ok and run.records == 0
    [again] = ingest(s, ["users"], date=NEXT, progress=False)
    assert again.ok


# ---------------------------------------------------------------- item 10: the envelope
def test_a_page_count_that_does_not_match_the_total_fails_the_endpoint(tmp_path, fake_api):
    def lying(req):
        if req.endpoint == "users":
            body = {"items": api.data["users"][:1], "total": 1, "page": req.page,
                    "size": req.size, "pages": 100_000}
            return 200, {}, json.dumps(body).encode()
        return None

    api = fake_api(hook=lying)
    s = settings(tmp_path, api)
    # tracks first: the pre-flight request goes to the first endpoint.
    tracks, users = ingest(s, ["tracks", "users"], date=DAY, progress=False)
    assert not users.ok and "'pages' is 100000" in users.error
    assert "ceil(total / size)" in users.error
    assert api.hits("users") <= 1 + s.max_retries  # page 1 and its retries, no more
    assert tracks.ok
    assert not Lake(s.lake).exists(names.RAW_USERS)


# ---------------------------------------------------------------- item 11: server text
TOKEN = "tok-SECRET-0123456789"


def reflecting(status: int):
    """A hook answering users with ``status``, echoing the request's credentials and escapes."""
    def hook(req):
        if req.endpoint != "users":
            return None
        body = {"detail": f"denied \x1b[2J\x1b]0;pwned\x07\x1b[31mAuthorization: "
                          f"{req.headers.get('Authorization')} token={TOKEN}\r\n\x07"}
        return status, {}, json.dumps(body).encode()
    return hook


def test_a_reflected_token_and_escapes_never_reach_runs_alerts_or_terminal(tmp_path, fake_api):
    api = fake_api(hook=reflecting(500))
    command, out = alert_sink(tmp_path)
    s = settings(tmp_path, api, api_token=TOKEN, alert_command=command)
    tracks, users = ingest(s, ["tracks", "users"], date=DAY, progress=False)
    assert tracks.ok and not users.ok
    assert "denied" in users.error and "Bearer <redacted>" in users.error
    stored = Lake(s.lake).sql("SELECT error FROM meta.runs WHERE target = 'users'").fetchone()[0]
    notify_runs(s, [users])
    for text in (users.error, stored, out.read_text()):
        assert TOKEN not in text and "SECRET" not in text
        assert "\x1b" not in text and "\x07" not in text and "\r" not in text


def test_the_error_line_of_a_refusing_server_is_scrubbed(tmp_path, fake_api):
    api = fake_api(hook=reflecting(401))
    result = CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), "ingest", "users",
                                      "--api-url", api.url, "--no-progress"],
                                env={"LAKEHOUSE_API_TOKEN": TOKEN})
    assert result.exit_code == 1
    assert "denied" in result.output and "<redacted>" in result.output
    assert TOKEN not in result.output and "SECRET" not in result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert result.output.count("\n") == 1


def test_scrub_keeps_ordinary_words():
    from lakehouse.source.scrub import scrub

    assert scrub("unexpected token in JSON at 3") == "unexpected token in JSON at 3"
    assert scrub("Authorization: Basic dXNlcjpwdw==") == "Authorization: Basic <redacted>"
    assert scrub('{"api_key": "abc"}') == '{"api_key": "<redacted>"}'


# ---------------------------------------------------------------- item 12: colliding fields
def test_source_fields_that_collide_with_ours_are_kept_renamed_and_reported(tmp_path, fake_api):
    api = fake_api()
    for item in api.data["users"]:
        item.update({"_run_id": "theirs", "ingest_date": "1999-01-01", "ID": item["id"] * 10})
    s = settings(tmp_path, api)
    for day in (DAY, NEXT):  # every run, not only the first
        [run] = ingest(s, ["users"], date=day, progress=False)
        assert run.ok, run.error
    notes = " | ".join(run.schema_changes)
    for key, column in (("_run_id", "source__run_id"), ("ingest_date", "source_ingest_date"),
                        ("ID", "source_ID")):
        assert f"new field {key} (" in notes and f"kept as column {column}" in notes
    lake = Lake(s.lake)
    row = lake.sql('SELECT "_run_id", ingest_date, id, source__run_id, source_ingest_date, '
                   f'"source_ID" FROM raw.users WHERE ingest_date = DATE \'{NEXT}\' '
                   'ORDER BY id LIMIT 1').fetchone()
    assert row[0] == run.run_id and row[1] == NEXT
    assert row[2:] == (1, "theirs", "1999-01-01", 10)
