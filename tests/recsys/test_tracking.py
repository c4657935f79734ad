"""MLflow tracking: trains and aliases logged to a real local sqlite store, read back."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.config import Settings
from lakehouse.errors import ConfigError
from lakehouse.recsys.registry import Registry
from lakehouse.recsys.tracking import (
    CHECKSUM_TAG,
    EXPERIMENT,
    LAKE_VERSION_TAG,
    MODEL_NAME,
    artifact_root,
    track_aliases,
    track_train,
)
from lakehouse.recsys.train import train

from .conftest import LAST_DAY

pytestmark = pytest.mark.slow

# Set by _mlflow as each test starts: importing mlflow at collection cost every test worker
# ~0.5 s of start-up, also in `make test-fast`, which runs none of these (all slow).
mlflow = MlflowClient = None


@pytest.fixture(autouse=True)
def _mlflow():
    global mlflow, MlflowClient
    mlflow = pytest.importorskip("mlflow", reason="pip install 'lakehouse[mlflow]'")
    from mlflow.tracking import MlflowClient


@pytest.fixture
def tracked(tiny_settings, tmp_path) -> Settings:
    uri = f"sqlite:///{tmp_path / 'lake' / 'mlflow.db'}"
    return tiny_settings.replace(mlflow_tracking_uri=uri)


def _client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri,
                        registry_uri=settings.mlflow_tracking_uri)


def _by_lake_version(client: MlflowClient) -> dict:
    return {mv.tags[LAKE_VERSION_TAG]: mv
            for mv in client.search_model_versions(f"name='{MODEL_NAME}'")}


def _train_run(client: MlflowClient, lake_version: str):
    exp = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([exp.experiment_id],
                              f"tags.{LAKE_VERSION_TAG} = '{lake_version}'")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.data.tags.get("mlflow.runName") for r in runs]
    return parents[0], children


def test_train_logs_one_run_with_nested_candidates_and_registers_the_version(
        tracked, monkeypatch, tmp_path):
    # Nothing may leave the machine: any connection but a local socket fails the test.
    attempts = []
    real_connect = socket.socket.connect

    def local_only(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and \
                not str(address[0]).startswith(("127.", "::1", "localhost")):
            attempts.append(address)
            raise OSError("no network in this test")
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", local_only)
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    result = train(tracked, date=LAST_DAY)
    assert attempts == []
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    client = _client(tracked)
    info = Registry(tracked.models_dir).get(result.version)

    run, children = _train_run(client, result.version)
    assert run.info.status == "FINISHED"
    assert run.data.params["candidate"] == result.chosen
    assert run.data.params["primary_metric"] == "precision_at_10"
    assert run.data.params["holdout_share"] == str(tracked.holdout_share)
    metrics = run.data.metrics
    assert metrics["model.precision_at_10"] == pytest.approx(
        result.metrics["model"]["precision_at_10"])
    assert metrics["popularity.precision_at_10"] == pytest.approx(
        result.metrics["baseline"]["precision_at_10"])
    assert {"model.ndcg_at_10", "model.auc", "popularity.coverage"} <= set(metrics)
    tags = run.data.tags
    assert tags[CHECKSUM_TAG] == info.sha256
    assert tags["lineage.as_of"] == LAST_DAY.isoformat()
    assert int(tags["lineage.listens"]) == info.lineage["listens"]
    assert any(k.startswith("lineage.tables.") for k in tags)
    assert tags["lakehouse.promoted"] == "true"

    # Each candidate of the search is a nested run with its configuration and metrics.
    assert sorted(c.data.tags["mlflow.runName"] for c in children) == \
        sorted(c["name"] for c in result.candidates)
    assert all(c.data.tags["mlflow.parentRunId"] == run.info.run_id for c in children)
    chosen = [c for c in children if c.data.tags["lakehouse.chosen"] == "true"]
    assert [c.data.tags["mlflow.runName"] for c in chosen] == [result.chosen]
    assert chosen[0].data.metrics["test.precision_at_10"] == pytest.approx(
        result.metrics["model"]["precision_at_10"])

    # Artifacts: the bundle, byte for byte, and the candidates table.
    names = {a.path for a in client.list_artifacts(run.info.run_id, "bundle")}
    assert names == {"bundle/model.npz", "bundle/model.json"}
    local = client.download_artifacts(run.info.run_id, "bundle/model.npz", str(tmp_path))
    assert Path(local).read_bytes() == info.artifact.read_bytes()
    table = client.download_artifacts(run.info.run_id, "selection/candidates.csv",
                                      str(tmp_path))
    assert result.chosen in Path(table).read_text()
    # The sqlite store keeps its artifacts beside the database, not in the working folder.
    assert run.info.artifact_uri.startswith((tracked.lake / "mlartifacts").as_uri())

    # The registered version: checksum and lake version as tags, the lake's aliases.
    mv = _by_lake_version(client)[result.version]
    assert mv.tags[CHECKSUM_TAG] == info.sha256 and mv.run_id == run.info.run_id
    assert client.get_model_version_by_alias(MODEL_NAME, "champion").version == mv.version


def test_promote_and_rollback_move_the_aliases_in_mlflow_too(tracked):
    first = train(tracked, date=LAST_DAY)
    second = train(tracked, date=LAST_DAY, promote="never")
    client = _client(tracked)
    versions = _by_lake_version(client)
    assert {first.version, second.version} <= set(versions)

    def alias(name):
        return client.get_model_version_by_alias(MODEL_NAME, name).tags[LAKE_VERSION_TAG]

    assert alias("champion") == first.version and alias("challenger") == second.version
    # The second train also logs the champion's configuration retrained on its split.
    run, _ = _train_run(client, second.version)
    assert run.data.metrics["previous_champion.precision_at_10"] == pytest.approx(
        second.metrics["champion"]["precision_at_10"])
    assert run.data.tags["lakehouse.promoted"] == "false"
    runner = CliRunner()
    env = {"LAKEHOUSE_MLFLOW_TRACKING_URI": tracked.mlflow_tracking_uri}
    out = runner.invoke(cli, ["--lake", str(tracked.lake), "models", "promote", second.version],
                        env=env)
    assert out.exit_code == 0, out.output
    assert alias("champion") == second.version
    with pytest.raises(mlflow.exceptions.MlflowException):  # the lake cleared it
        client.get_model_version_by_alias(MODEL_NAME, "challenger")
    out = runner.invoke(cli, ["--lake", str(tracked.lake), "models", "rollback"], env=env)
    assert out.exit_code == 0, out.output
    assert alias("champion") == first.version
    # Nothing was logged twice: one parent run per lake version.
    for version in (first.version, second.version):
        _train_run(client, version)


def test_a_version_trained_before_tracking_is_logged_when_an_alias_reaches_it(
        tiny_settings, tmp_path):
    result = train(tiny_settings, date=LAST_DAY)
    settings = tiny_settings.replace(
        mlflow_tracking_uri=f"sqlite:///{tmp_path / 'later.db'}")
    assert track_aliases(settings) is True
    client = _client(settings)
    mv = client.get_model_version_by_alias(MODEL_NAME, "champion")
    assert mv.tags[LAKE_VERSION_TAG] == result.version
    run, children = _train_run(client, result.version)
    assert run.data.metrics["model.precision_at_10"] == pytest.approx(
        result.metrics["model"]["precision_at_10"])
    assert len(children) == len(result.candidates)
    assert track_aliases(settings) is True  # again: nothing new is logged
    assert len(client.search_model_versions(f"name='{MODEL_NAME}'")) == 1


def test_an_unreachable_tracking_server_warns_and_the_train_stands(tiny_settings, caplog):
    with socket.socket() as sock:  # a loopback port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = tiny_settings.replace(mlflow_tracking_uri=f"http://127.0.0.1:{port}",
                                     mlflow_timeout=2)
    caplog.set_level(logging.WARNING, logger="lakehouse.recsys.tracking")
    t0 = time.perf_counter()
    result = train(settings, date=LAST_DAY)
    assert result.promoted and Registry(settings.models_dir).alias("champion") == result.version
    warnings = [r.getMessage() for r in caplog.records if r.name == "lakehouse.recsys.tracking"]
    assert len(warnings) == 1 and "MLflow tracking could not log the training" in warnings[0]
    assert "source of truth" in warnings[0]
    # Retries are cut short: the train does not wait minutes on a dead server.
    assert time.perf_counter() - t0 < 120


def test_the_cli_train_warns_in_one_line_and_exits_0_when_tracking_fails(tiny_settings,
                                                                          tmp_path, caplog):
    # A sqlite store in a folder that cannot be created: a file is in the way.
    (tmp_path / "blocker").write_text("")
    uri = f"sqlite:///{tmp_path / 'blocker' / 'mlflow.db'}"
    out = CliRunner().invoke(cli, ["--lake", str(tiny_settings.lake), "train",
                                   "--date", LAST_DAY.isoformat(), "--trials", "1"],
                             env={"LAKEHOUSE_MLFLOW_TRACKING_URI": uri,
                                  "LAKEHOUSE_EPOCHS": "5", "LAKEHOUSE_COMPONENTS": "8",
                                  "LAKEHOUSE_TRAIN_THREADS": "1"})
    assert out.exit_code == 0, out.output
    assert "Traceback" not in out.output
    # The CLI logs warnings to stderr; under pytest they arrive here.
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "lakehouse.recsys.tracking"]
    assert len(warnings) == 1
    assert "MLflow tracking could not log the training (FileExistsError" in warnings[0]
    runs = Registry(tiny_settings.models_dir).versions()
    assert len(runs) == 1


def test_tracking_off_does_nothing_and_a_missing_mlflow_warns(tiny_settings, monkeypatch,
                                                              caplog, tmp_path):
    assert track_train(tiny_settings, None) is False  # no URI: not even imported
    settings = tiny_settings.replace(mlflow_tracking_uri=f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setitem(__import__("sys").modules, "mlflow.tracking", None)
    caplog.set_level(logging.WARNING, logger="lakehouse.recsys.tracking")
    assert track_aliases(settings) is False
    assert "pip install 'lakehouse[mlflow]'" in caplog.text
    assert not (tmp_path / "x.db").exists()


@pytest.mark.parametrize("uri", ["sqlite:///lake/mlflow.db", "sqlite:////tmp/m.db",
                                 "databricks", "databricks://profile", "http://127.0.0.1:5000",
                                 "https://mlflow.example.com", "postgresql+psycopg://h/db",
                                 "file:///tmp/mlruns"])
def test_tracking_uris_that_mlflow_takes_are_accepted(uri):
    assert Settings.load(env={"LAKEHOUSE_MLFLOW_TRACKING_URI": uri}).mlflow_tracking_uri == uri


@pytest.mark.parametrize("uri", ["lake/mlflow.db", "ftp://host/x", "https://u:secret@host"])
def test_bad_tracking_uris_are_config_errors_that_hide_credentials(uri):
    if uri.startswith("https"):  # a valid scheme: accepted, but never shown
        settings = Settings.load(env={"LAKEHOUSE_MLFLOW_TRACKING_URI": uri})
        assert "secret" not in repr(settings)
        return
    with pytest.raises(ConfigError, match="LAKEHOUSE_MLFLOW_TRACKING_URI"):
        Settings.load(env={"LAKEHOUSE_MLFLOW_TRACKING_URI": uri})
    with pytest.raises(ConfigError, match="mlflow_timeout"):
        Settings.load(env={"LAKEHOUSE_MLFLOW_TIMEOUT": "0"})


def test_a_sqlite_store_keeps_artifacts_beside_its_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert artifact_root("sqlite:///lake/mlflow.db") == (tmp_path / "lake/mlartifacts").as_uri()
    assert artifact_root("sqlite:////srv/x/mlflow.db") == "file:///srv/x/mlartifacts"
    assert artifact_root("http://127.0.0.1:5000") is None
    assert json.dumps(artifact_root("databricks")) == "null"
