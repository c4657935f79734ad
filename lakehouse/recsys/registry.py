"""The model registry under ``<lake>/models/``.

Layout::

    models/
      versions/v0001/model.npz    the artifact: arrays only (embeddings, id maps, vocabularies)
      versions/v0001/model.json   params, metrics, lineage, versions, sha256 of model.npz
      aliases.json                {"champion": "v0001", "challenger": "v0002"}
      promotions.jsonl            append-only: one JSON object per promotion or rollback

A version directory is written to a temporary folder, fsynced, then renamed
into place, so a reader sees a whole version or none; it is never changed
afterwards. Aliases are switched by writing a temporary file and
``os.replace``-ing it. The artifact holds no pickle at all (``allow_pickle``
is off) and its checksum is verified before it is parsed, so a tampered file
is refused rather than loaded.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse import names
from lakehouse.errors import ModelError
from lakehouse.lake import utc_now
from lakehouse.locking import lake_lock
from lakehouse.sqlguard import first_line

if TYPE_CHECKING:
    from lakehouse.recsys.families import Routed

ALIASES = (names.CHAMPION, names.CHALLENGER)
ARTIFACT = "model.npz"
META = "model.json"
_VERSION = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows about one model version.

    ``metrics`` has the keys ``"model"`` and ``"baseline"`` (popularity on the
    same split) and ``"cold_start"`` (the model on users without training
    listens, or None); each is a dict with ``precision_at_10``,
    ``recall_at_10``, ``ndcg_at_10``, ``auc`` and ``coverage``.
    """

    version: str
    created_at: dt.datetime
    params: dict[str, Any]
    metrics: dict[str, Any]
    lineage: dict[str, Any]
    path: Path
    sha256: str = ""
    training_seconds: float | None = None
    package_version: str | None = None
    library_versions: dict[str, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    # Model selection: every candidate's metrics, every trial of the search, whether the
    # artifact was refit on all listens (its metrics are then its configuration's).
    candidates: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    refit: bool = False
    selection: dict[str, Any] = field(default_factory=dict)

    @property
    def artifact(self) -> Path:
        """The artifact file of this version."""
        return self.path / ARTIFACT


@dataclass(frozen=True)
class UnreadableVersion:
    """A version folder whose ``model.json`` cannot be read, and why."""

    version: str
    problem: str


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def sha256_bytes(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class Registry:
    """Versioned models with ``champion``/``challenger`` aliases and a promotion log.

    Args:
        root: The registry folder (``settings.models_dir``). Created on first write.
    """

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @property
    def aliases_file(self) -> Path:
        return self.root / "aliases.json"

    @property
    def log_file(self) -> Path:
        return self.root / "promotions.jsonl"

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two trainings (or a training and a rollback) must not interleave alias switches.
        with lake_lock(self.root, "registry", timeout=60):
            yield

    # ----------------------------------------------------------------- reads
    def versions(self) -> list[ModelInfo]:
        """Every readable version, oldest first (see :meth:`unreadable` for the others).

        One damaged ``model.json`` of an old version must not hide the whole
        registry: it is left out here, and listed by :meth:`unreadable`.
        """
        return [v for v in self.scan() if isinstance(v, ModelInfo)]

    def unreadable(self) -> dict[str, str]:
        """Version -> why its ``model.json`` cannot be read, oldest first."""
        return {v.version: v.problem for v in self.scan() if isinstance(v, UnreadableVersion)}

    def scan(self) -> list[ModelInfo | UnreadableVersion]:
        """Every version folder, oldest first: its info, or why it cannot be read."""
        if not self.versions_dir.is_dir():
            return []
        found = sorted((int(m.group(1)), p.name) for p in self.versions_dir.iterdir()
                       if (m := _VERSION.match(p.name)) and (p / META).is_file())
        out: list[ModelInfo | UnreadableVersion] = []
        for _n, name in found:
            try:
                out.append(self.get(name))
            except ModelError as exc:
                out.append(UnreadableVersion(name, str(exc)))
        return out

    def get(self, version: str) -> ModelInfo:
        """The version called ``version`` (an alias name works too).

        Raises:
            ModelError: No such version.
        """
        if version in ALIASES:
            resolved = self.alias(version)
            if resolved is None:
                raise ModelError(f"there is no {version} model yet; run 'lakehouse train'")
            version = resolved
        path = self.versions_dir / version
        if not _VERSION.match(version) or not (path / META).is_file():
            known = ", ".join(i.version for i in self.versions()[-5:]) or "none"
            raise ModelError(f"no model version {version!r} in {self.root} (latest: {known}); "
                             "'lakehouse models list' shows them")
        try:
            meta = json.loads((path / META).read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"model {version} has an unreadable {META}: "
                             f"{' '.join(str(exc).split())}; promote another version") from None
        problem = _meta_problem(meta)
        if problem:
            raise ModelError(f"model {version} has a damaged {path / META}: {problem}; "
                             "restore it, or promote another version") from None
        return ModelInfo(
            version=version,
            created_at=_created_at(meta["created_at"]),
            params=meta.get("params", {}),
            metrics=meta.get("metrics", {}),
            lineage=meta.get("lineage", {}),
            path=path,
            sha256=meta.get("sha256", ""),
            training_seconds=meta.get("training_seconds"),
            package_version=meta.get("package_version"),
            library_versions=meta.get("library_versions", {}),
            history=meta.get("history", []),
            candidates=meta.get("candidates", []),
            trials=meta.get("trials", []),
            refit=bool(meta.get("refit", False)),
            selection=meta.get("selection", {}),
        )

    def alias(self, name: str) -> str | None:
        """The version an alias (``champion`` or ``challenger``) points to, or None."""
        if name not in ALIASES:
            raise ModelError(f"unknown alias {name!r}; use one of {', '.join(ALIASES)}")
        return self._aliases().get(name)

    def _aliases(self) -> dict[str, str | None]:
        fix = "restore it or 'lakehouse models promote VERSION'"
        try:
            aliases = json.loads(self.aliases_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ModelError(f"{self.aliases_file} is not valid JSON "
                             f"({' '.join(str(exc).split())}); {fix}") from None
        if not isinstance(aliases, dict):
            raise ModelError(f"{self.aliases_file} holds a {type(aliases).__name__}, not an "
                             f"object of alias -> version; {fix}")
        for name, version in aliases.items():
            if version is not None and not (isinstance(version, str) and _VERSION.match(version)):
                raise ModelError(f"{self.aliases_file}: alias {str(name)[:40]!r} is "
                                 f"{str(version)[:40]!r}, not a version like 'v0001'; {fix}")
        return aliases

    def promotions(self) -> list[dict[str, Any]]:
        """The promotion log, oldest first (promotions and rollbacks)."""
        try:
            lines = self.log_file.read_text().splitlines()
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise ModelError(f"cannot read {self.log_file}: {exc.strerror}") from None
        entries = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            if not isinstance(entry, dict) or not isinstance(entry.get("to"), str | None):
                raise ModelError(f"{self.log_file} line {number} is not a promotion entry; "
                                 "remove or repair that line (the log is append-only JSON "
                                 "lines)")
            entries.append(entry)
        return entries

    def load_bundle(self, version: str) -> Routed:
        """The served bundle of ``version`` (or alias), checksum verified first.

        Scoring and serving load models here, never through training.

        Raises:
            ModelError: Missing version, tampered artifact, or arrays that do not
                make the model: shapes, dtypes and id maps are checked as the
                bundle loads (:meth:`~lakehouse.recsys.families.Recommender.check_arrays`).
        """
        from lakehouse.errors import ConfigError
        from lakehouse.recsys.families import Routed

        info = self.get(version)
        arrays = self.load_arrays(info.version)
        try:
            return Routed.from_arrays(info.params, arrays)
        except (ModelError, ConfigError, KeyError, ValueError, TypeError) as exc:
            # A tampered or mis-saved artifact fails here in one line (issue 21), not as
            # a traceback while scoring, nor as wrong lists with exit code 0.
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise ModelError(f"model {info.version} does not load: {first_line(str(text))}; "
                             "retrain, or promote another version") from None

    def load_arrays(self, version: str) -> dict[str, np.ndarray]:
        """The artifact's arrays, after checking its sha256.

        Raises:
            ModelError: The version is missing, or its artifact does not match
                the recorded checksum (it is then not parsed at all).
        """
        data = self.verify(version)
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                return {k: npz[k] for k in npz.files}
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
            # An object array (refused without pickle) or a damaged archive whose
            # checksum was updated to match: tampered, not a model.
            raise ModelError(f"model {version} artifact cannot be read as plain arrays "
                             f"({first_line(exc)}); retrain or promote another version") \
                from None

    def verify(self, version: str) -> bytes:
        """The artifact of ``version``, checked against its recorded sha256.

        Raises:
            ModelError: The version is missing or damaged, or its artifact is
                missing or does not match the checksum.
        """
        info = self.get(version)
        try:
            data = info.artifact.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model {info.version}: {exc.strerror}") from None
        if not info.sha256 or sha256_bytes(data) != info.sha256:
            raise ModelError(f"model {info.version} artifact {info.artifact} does not match its "
                             "recorded sha256: refusing to load it; retrain or promote "
                             "another version")
        return data

    # ---------------------------------------------------------------- writes
    def save(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> ModelInfo:
        """Store a new immutable version and return it.

        Args:
            arrays: The artifact's arrays (numeric or unicode; no objects).
            meta: JSON-serialisable ``params``, ``metrics``, ``lineage`` and
                anything else worth keeping; ``version``, ``created_at`` and
                ``sha256`` are filled in here.
        """
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        blob = buf.getvalue()
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            _write_synced(tmp / ARTIFACT, blob)
            full = {**meta, "created_at": utc_now().isoformat(), "sha256": sha256_bytes(blob)}
            for attempt in range(100):
                version = f"v{self._next_number() + attempt:04d}"
                full["version"] = version
                _write_synced(tmp / META, json.dumps(full, indent=2, default=str).encode())
                _fsync_dir(tmp)
                try:
                    # rename() refuses a non-empty target: a concurrent writer that took
                    # this number first makes us try the next one.
                    os.rename(tmp, self.versions_dir / version)
                    break
                except OSError:
                    continue
            else:
                raise ModelError(f"cannot allocate a model version in {self.versions_dir}")
            _fsync_dir(self.versions_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return self.get(version)

    def _next_number(self) -> int:
        if not self.versions_dir.is_dir():
            return 1
        nums = [int(m.group(1)) for p in self.versions_dir.iterdir()
                if (m := _VERSION.match(p.name))]
        return max(nums, default=0) + 1

    def set_alias(self, name: str, version: str | None) -> None:
        """Point alias ``name`` at ``version`` (None clears it), atomically."""
        with self._locked():
            self._set_alias(name, version)

    def _set_alias(self, name: str, version: str | None) -> None:
        if name not in ALIASES:
            raise ModelError(f"unknown alias {name!r}; use one of {', '.join(ALIASES)}")
        if version is not None:
            self.get(version)
        aliases = self._aliases()
        aliases[name] = version
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".aliases-{uuid.uuid4().hex}.json"
        _write_synced(tmp, json.dumps(aliases, indent=2).encode())
        os.replace(tmp, self.aliases_file)
        _fsync_dir(self.root)

    def _log(self, entry: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "a") as fh:
            fh.write(json.dumps(entry, default=str) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def promote(self, version: str, reason: str,
                deltas: Mapping[str, float] | None = None, *,
                interval: Mapping[str, Any] | None = None,
                action: str = "promote") -> dict[str, Any]:
        """Make ``version`` the champion and log it.

        Args:
            version: The version to promote.
            reason: Why, in words (kept in the log).
            deltas: Metric differences versus the previous champion; computed
                from the stored metrics when omitted.
            interval: The bootstrap interval of (challenger - champion) that
                justified it, kept in the log.
            action: ``promote``, or ``refresh`` when the champion's own
                configuration was refit on newer data.

        Returns:
            The promotion log entry.

        Raises:
            ModelError: No such version, or its artifact fails its checksum.
        """
        with self._locked():
            info = self.get(version)
            self.verify(info.version)  # never switch the champion to a damaged artifact
            previous = self.alias(names.CHAMPION)
            if deltas is None:
                deltas = _metric_deltas(info, self.get(previous) if previous else None)
            entry = {"at": utc_now().isoformat(), "action": action, "from": previous,
                     "to": info.version, "reason": reason, "deltas": dict(deltas)}
            if interval is not None:
                entry["interval"] = dict(interval)
            self._set_alias(names.CHAMPION, info.version)
            if self.alias(names.CHALLENGER) == info.version:
                self._set_alias(names.CHALLENGER, None)
            self._log(entry)
            return entry

    def rollback(self, reason: str = "manual rollback") -> dict[str, Any]:
        """Make the previous champion the champion again, and log it.

        Raises:
            ModelError: There is no previous champion to go back to.
        """
        with self._locked():
            stack = self._champion_stack()
            current = self.alias(names.CHAMPION)
            if len(stack) < 2 or stack[-1] != current:
                raise ModelError("there is no previous champion to roll back to; "
                                 "'lakehouse models promote VERSION' picks one explicitly")
            target = stack[-2]
            self.verify(target)  # never switch the champion to a damaged artifact
            entry = {"at": utc_now().isoformat(), "action": "rollback", "from": current,
                     "to": target, "reason": reason,
                     "deltas": _metric_deltas(self.get(target), self.get(current))}
            self._set_alias(names.CHAMPION, target)
            self._log(entry)
            return entry

    def _champion_stack(self) -> list[str]:
        # Promotions push, rollbacks pop: repeated rollbacks walk back in time.
        stack: list[str] = []
        for entry in self.promotions():
            if entry.get("action") == "rollback":
                if stack:
                    stack.pop()
            else:
                stack.append(entry["to"])
        return stack


def _metric_deltas(new: ModelInfo, old: ModelInfo | None) -> dict[str, float]:
    if old is None:
        return {}
    a, b = new.metrics.get("model") or {}, old.metrics.get("model") or {}
    return {k: round(a[k] - b[k], 6) for k in a if isinstance(a.get(k), int | float)
            and isinstance(b.get(k), int | float)}


_INT_PARAMS = ("components", "epochs", "max_sampled", "seed", "num_threads", "k")
_NUMBER_PARAMS = ("learning_rate", "item_alpha", "user_alpha", "holdout_share")
_MAPPINGS = ("params", "metrics", "lineage", "library_versions")


def _meta_problem(meta: Any) -> str | None:
    """What makes a ``model.json`` unusable, or None: it is read back by scoring."""
    if not isinstance(meta, dict):
        return f"it holds a {type(meta).__name__}, not an object"
    if not isinstance(meta.get("created_at"), str):
        return "created_at is missing"
    try:
        _created_at(meta["created_at"])
    except ValueError:
        return "created_at is not an ISO 8601 time"
    for key in _MAPPINGS:
        if not isinstance(meta.get(key, {}), dict):
            return f"{key} is not an object"
    for key, value in meta.get("metrics", {}).items():
        if value is not None and not isinstance(value, dict):
            return f"metrics.{str(key)[:40]} is not an object"
    if not isinstance(meta.get("history", []), list):
        return "history is not a list"
    if not isinstance(meta.get("sha256", ""), str):
        return "sha256 is not a string"
    params = meta.get("params", {})
    for key in _INT_PARAMS:
        value = params.get(key)
        if key in params and (not isinstance(value, int) or isinstance(value, bool)):
            return f"params.{key} is {str(value)[:40]!r}, not an integer"
    for key in _NUMBER_PARAMS:
        value = params.get(key)
        if key in params and (not isinstance(value, int | float) or isinstance(value, bool)):
            return f"params.{key} is {str(value)[:40]!r}, not a number"
    return None


def _created_at(value: str) -> dt.datetime:
    when = dt.datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)
