"""MLflow tracking of trainings and aliases, beside the lake's registry.

When ``settings.mlflow_tracking_uri`` (``LAKEHOUSE_MLFLOW_TRACKING_URI``) is
set, e.g. ``sqlite:///lake/mlflow.db`` or ``databricks``, and the ``mlflow``
extra is installed (``pip install 'lakehouse[mlflow]'``):

- every model version a ``train`` registers in the lake is logged as one
  MLflow run in the experiment ``lakehouse-train``: its configuration as
  params, the holdout metrics of the model (``model.*``) and of popularity on
  the same users (``popularity.*``) as metrics, its data lineage as
  ``lineage.*`` tags, the bundle (``model.npz`` and ``model.json``) and the
  candidates and trials tables as artifacts; each candidate of the search is
  a nested run with its configuration and metrics;
- the version is registered as a version of the MLflow model
  ``lakehouse-recommender``, tagged with the lake's version (``lake_version``)
  and the artifact's ``checksum`` (sha256);
- the lake's ``champion`` and ``challenger`` aliases are mirrored onto that
  model after every train, promote and rollback.

The lake's registry stays the source of truth: scoring and serving never read
MLflow, and every MLflow call here is after the fact. A tracking server that
cannot be reached, a missing ``mlflow`` package or any MLflow error logs a
warning and the train (or promotion) stands. Nothing is fetched from the
internet: MLflow's telemetry is turned off before it is imported, and a
sqlite store keeps its artifacts in a folder beside the database file.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.recsys.registry import ALIASES, ModelInfo, Registry

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

EXPERIMENT = "lakehouse-train"
MODEL_NAME = "lakehouse-recommender"
# Tags on runs and model versions that tie them to the lake's registry.
LAKE_VERSION_TAG = "lake_version"
CHECKSUM_TAG = "checksum"
# MLflow's own tags: a run's name, and the parent of a nested run.
RUN_NAME_TAG = "mlflow.runName"
PARENT_RUN_TAG = "mlflow.parentRunId"
# MLflow's limit on a param's value (500 before MLflow 2.x servers; 6000 since).
_MAX_PARAM = 500


def track_train(settings: Settings, result: Any) -> bool:
    """Log what a train registered, and mirror the aliases (the hook ``train`` calls).

    Args:
        settings: Where the lake and the tracking server are.
        result: The :class:`~lakehouse.recsys.train.TrainResult` (its ``version`` and
            ``champion``, the versions this train may have added).

    Returns:
        True when everything was logged; False when tracking is off or failed
        (a warning says why). Never raises.
    """
    if not settings.mlflow_tracking_uri:
        return False
    versions = [v for v in (getattr(result, "version", None),
                            getattr(result, names.CHAMPION, None)) if v]
    return _guarded(settings, "log the training",
                    lambda tracker: tracker.sync(versions, result))


def track_aliases(settings: Settings) -> bool:
    """Mirror the lake's champion and challenger onto MLflow (after promote or rollback).

    A version that MLflow does not know yet (trained before tracking was on)
    is logged first, from the lake's registry. Returns like :func:`track_train`.
    """
    if not settings.mlflow_tracking_uri:
        return False
    return _guarded(settings, "set the champion/challenger aliases",
                    lambda tracker: tracker.sync([], None))


def _guarded(settings: Settings, what: str, work: Callable[[Tracker], None]) -> bool:
    """Run ``work`` with a tracker; a failure becomes a warning, never an exception."""
    try:
        with _mlflow_environment(settings):
            work(Tracker(settings))
        return True
    except ImportError as exc:
        log.warning("MLflow tracking is on (LAKEHOUSE_MLFLOW_TRACKING_URI) but could not "
                    "%s: %s; pip install 'lakehouse[mlflow]', or unset the variable. The "
                    "lake's registry is up to date.", what, exc)
    except Exception as exc:  # noqa: BLE001 - tracking must never fail a train
        message = " ".join(str(exc).split())[:300]
        log.warning("MLflow tracking could not %s (%s: %s); the lake's registry is up to "
                    "date and stays the source of truth; 'lakehouse models promote' or the "
                    "next train logs it again.", what, type(exc).__name__, message)
    return False


@contextlib.contextmanager
def _mlflow_environment(settings: Settings) -> Iterator[None]:
    """MLflow's variables for this call: short timeouts, few retries, no telemetry.

    MLflow reads them from the environment at each request; values the user
    set are kept. The default retries back off for minutes, which a train
    must not wait on an unreachable server.
    """
    # Telemetry stays off for the rest of the process: MLflow may check it again later.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    wanted = {"MLFLOW_HTTP_REQUEST_TIMEOUT": str(max(1, round(settings.mlflow_timeout))),
              "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
              "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
    added = [k for k in wanted if k not in os.environ]
    for key in added:
        os.environ[key] = wanted[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def artifact_root(uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: beside a sqlite file, else the server's.

    MLflow's default for a database store is ``./mlruns`` in the working
    directory, which would scatter artifacts wherever ``lakehouse`` runs.
    """
    parts = urlsplit(uri)
    if not parts.scheme.startswith("sqlite"):
        return None
    # SQLAlchemy: sqlite:///relative/path.db, sqlite:////absolute/path.db.
    path = Path(unquote(parts.path[1:]))
    return (path.resolve().parent / "mlartifacts").as_uri()


class Tracker:
    """One tracking session: an ``MlflowClient`` on the settings' URI and the lake's registry.

    Raises:
        ImportError: mlflow is not installed.
    """

    def __init__(self, settings: Settings):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.tracking import MlflowClient

        if not log.isEnabledFor(logging.INFO):
            # MLflow logs its schema migrations at INFO to stderr; -v shows them.
            logging.getLogger("mlflow").setLevel(logging.WARNING)
        self.uri = settings.mlflow_tracking_uri
        self.settings = settings
        self.registry = Registry(settings.models_dir)
        self.client: MlflowClient = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    # -------------------------------------------------------------- lookups
    def experiment_id(self) -> str:
        """The ``lakehouse-train`` experiment, created on first use."""
        exp = self.client.get_experiment_by_name(EXPERIMENT)
        if exp is not None:
            return exp.experiment_id
        return self.client.create_experiment(EXPERIMENT, artifact_location=artifact_root(self.uri),
                                             tags={"lakehouse.lake": str(self.settings.lake)})

    def model_versions(self) -> dict[str, str]:
        """The lake's versions already registered in MLflow: lake version -> MLflow version."""
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(MODEL_NAME)
        except MlflowException:
            return {}
        found = {}
        for mv in self.client.search_model_versions(f"name='{MODEL_NAME}'"):
            lake_version = (mv.tags or {}).get(LAKE_VERSION_TAG)
            if lake_version:
                found[lake_version] = str(mv.version)
        return found

    # ---------------------------------------------------------------- writes
    def sync(self, versions: list[str], result: Any | None) -> None:
        """Log ``versions`` (and any aliased version MLflow lacks), then mirror the aliases."""
        known = self.model_versions()
        aliases = {a: self.registry.alias(a) for a in ALIASES}
        wanted = list(dict.fromkeys([*versions, *(v for v in aliases.values() if v)]))
        for version in wanted:
            if version not in known:
                info = self.registry.get(version)
                own = result if getattr(result, "version", None) == version else None
                known[version] = self.log_version(info, own)
        for alias, version in aliases.items():
            self._set_alias(alias, known.get(version) if version else None)

    def log_version(self, info: ModelInfo, result: Any | None = None) -> str:
        """Log one lake version as a run with nested candidate runs; register it.

        Args:
            info: The version in the lake's registry.
            result: The train that made it, for what the registry does not keep:
                the gate's decision, and the previous champion's configuration
                retrained on the same split (``previous_champion.*`` metrics).

        Returns:
            The MLflow model version's number.
        """
        from mlflow.entities import Metric, Param, RunTag

        experiment = self.experiment_id()
        now = int(time.time() * 1000)
        selection = info.selection or {}
        tags = {RUN_NAME_TAG: f"train {info.version}",
                LAKE_VERSION_TAG: info.version, CHECKSUM_TAG: info.sha256,
                "lakehouse.candidate": str(info.params.get("candidate", "")),
                "lakehouse.cold_route": str(selection.get("cold_route", "")),
                "lakehouse.selection": str(selection.get("reason", ""))[:5000],
                "lakehouse.refreshed_from": str(selection.get("refreshed_from") or ""),
                "lakehouse.package_version": str(info.package_version or ""),
                "lakehouse.lake": str(self.settings.lake)}
        tags.update({f"lineage.{k}": v for k, v in _flatten(info.lineage).items()})
        if result is not None:
            tags["lakehouse.promoted"] = str(bool(getattr(result, "promoted", False))).lower()
            tags["lakehouse.reason"] = str(getattr(result, "reason", ""))[:5000]
        metrics = _metrics(info.metrics)
        champion = (getattr(result, "metrics", None) or {}).get(names.CHAMPION) if result else None
        metrics.update(_metrics({"previous_champion": champion}))
        params = _flatten({k: v for k, v in info.params.items()
                           if k not in ("config", "cold_config")})
        params.update(_flatten({"cold_config": info.params.get("cold_config")}))
        run = self.client.create_run(experiment, start_time=now, tags=tags)
        run_id = run.info.run_id
        self.client.log_batch(
            run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
            params=[Param(k, v) for k, v in params.items()],
            tags=[RunTag("mlflow.note.content", _note(info))])
        for candidate in info.candidates:
            self._log_candidate(experiment, run_id, candidate, info, now)
        self._log_artifacts(run_id, info)
        self.client.set_terminated(run_id, "FINISHED")
        return self._register(info, run)

    def _log_candidate(self, experiment: str, parent: str, candidate: Mapping[str, Any],
                       info: ModelInfo, now: int) -> None:
        from mlflow.entities import Metric, Param

        name = str(candidate.get("name", "?"))
        chosen = name == info.params.get("candidate")
        tags = {RUN_NAME_TAG: name, PARENT_RUN_TAG: parent,
                LAKE_VERSION_TAG: info.version, "lakehouse.chosen": str(chosen).lower(),
                "lakehouse.trials": str(candidate.get("trials", "")),
                "lakehouse.search_seconds": str(candidate.get("search_seconds", ""))}
        child = self.client.create_run(experiment, start_time=now, tags=tags)
        config = candidate.get("config") or {}
        params = _flatten(config.get("params", config) if isinstance(config, dict) else {})
        metrics = _metrics({"test": candidate.get("test"), "cold_start": candidate.get("cold_start"),
                            "placebo": candidate.get("placebo")})
        if isinstance(candidate.get("tune"), int | float):
            metrics["tune"] = float(candidate["tune"])
        self.client.log_batch(child.info.run_id,
                              metrics=[Metric(k, v, now, 0) for k, v in metrics.items()],
                              params=[Param(k, v) for k, v in params.items()])
        self.client.set_terminated(child.info.run_id, "FINISHED")

    def _log_artifacts(self, run_id: str, info: ModelInfo) -> None:
        import pandas as pd

        self.client.log_artifacts(run_id, str(info.path), artifact_path="bundle")
        with tempfile.TemporaryDirectory(prefix="lakehouse-mlflow-") as tmp:
            candidates = pd.DataFrame([
                {"candidate": c.get("name"), "chosen": c.get("name") == info.params.get("candidate"),
                 "trials": c.get("trials"), "search_seconds": c.get("search_seconds"),
                 "tune": c.get("tune"), **(c.get("test") or {})} for c in info.candidates])
            candidates.to_csv(Path(tmp) / "candidates.csv", index=False)
            trials = pd.DataFrame([{k: v for k, v in t.items() if k != "params"}
                                   | {f"param.{k}": v for k, v in (t.get("params") or {}).items()}
                                   for t in info.trials])
            trials.to_csv(Path(tmp) / "trials.csv", index=False)
            self.client.log_artifacts(run_id, tmp, artifact_path="selection")

    def _register(self, info: ModelInfo, run: Any) -> str:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(
                MODEL_NAME, description="The lakehouse recommender: one version per model "
                                        "version of the lake's registry (lake_version tag).")
        except MlflowException as exc:
            if "already exists" not in str(exc).lower() and \
                    getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        mv = self.client.create_model_version(
            MODEL_NAME, source=f"{run.info.artifact_uri}/bundle", run_id=run.info.run_id,
            tags={LAKE_VERSION_TAG: info.version, CHECKSUM_TAG: info.sha256},
            description=f"lake version {info.version} ({info.params.get('candidate', '')})")
        return str(mv.version)

    def _set_alias(self, alias: str, version: str | None) -> None:
        from mlflow.exceptions import MlflowException

        if version is not None:
            self.client.set_registered_model_alias(MODEL_NAME, alias, version)
            return
        with contextlib.suppress(MlflowException):  # no such alias, or no model yet
            self.client.delete_registered_model_alias(MODEL_NAME, alias)


def _flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested dicts as dotted keys with string values (MLflow params and tags are strings)."""
    if isinstance(value, Mapping):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    if not prefix:
        return {}
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return {prefix[:-1]: text[:_MAX_PARAM]}


def _metrics(groups: Mapping[str, Any]) -> dict[str, float]:
    """Numeric metrics of each group as ``group.metric``; the baseline is named popularity."""
    rename = {"baseline": "popularity", "cold_start_baseline": "cold_start_popularity"}
    out = {}
    for group, values in groups.items():
        for key, value in (values or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{rename.get(group, group)}.{key}"] = float(value)
    return out


def _note(info: ModelInfo) -> str:
    """The run's description in MLflow's UI."""
    selection = info.selection or {}
    return (f"Lake model version {info.version} ({info.params.get('candidate', '')}), "
            f"sha256 {info.sha256}. {selection.get('reason', '')}")
