"""Listen-history shapes a real source serves, through the CLI on a small hetrec-like set."""

from __future__ import annotations

import pyarrow as pa
import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.mockapi.data import SCHEMAS
from lakehouse.mockapi.testing import running_mock_api
from tests import hetrec_like


def serve_and_run(tmp_path, history_of, *steps):
    recs = hetrec_like.records(users=60, items=300, seed=5)
    recs["listen_history"] = history_of(recs["listen_history"])
    tables = {e: pa.Table.from_pylist(rows, schema=SCHEMAS[e]) for e, rows in recs.items()}
    outputs = []
    with running_mock_api(tables=tables, admin=False) as api:
        for step in (("ingest", "--api-url", api.url), ("build",), *steps):
            outputs.append(CliRunner().invoke(cli, ["--lake", str(tmp_path / "lake"), *step]))
    return outputs


@pytest.mark.slow
def test_users_with_one_track_each_get_popularity_and_the_output_says_why(tmp_path,
                                                                          monkeypatch):
    monkeypatch.setenv("LAKEHOUSE_TRAIN_THREADS", "1")
    *_, trained, recommended = serve_and_run(
        tmp_path, lambda rows: [{**r, "items": (r["items"] or [])[:1]} for r in rows],
        ("train", "--budget", "5s", "--trials", "1"), ("recommend",))
    assert trained.exit_code == 0, trained.output
    assert trained.output == (
        "nothing can be evaluated yet (each of the 59 users with listens has one distinct "
        "track): popularity (v0001) is champion until there is a holdout\n")
    assert recommended.exit_code == 0, recommended.output
