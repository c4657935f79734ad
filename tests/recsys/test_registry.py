"""The registry: immutable versions, aliases, promotion log, rollback, checksums."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lakehouse.errors import ModelError
from lakehouse.recsys.registry import Registry


def _metrics(p: float) -> dict:
    m = {"precision_at_10": p, "recall_at_10": p, "ndcg_at_10": p, "auc": 0.5, "coverage": 0.1}
    return {"model": m, "baseline": m, "cold_start": None}


def _save(reg: Registry, p: float = 0.1):
    return reg.save({"w": np.arange(5, dtype=np.float32), "names": np.array(["a", "b"])},
                    {"params": {"components": 4}, "metrics": _metrics(p), "lineage": {"x": 1}})


def test_save_creates_numbered_immutable_versions(tmp_path):
    reg = Registry(tmp_path / "models")
    assert reg.versions() == [] and reg.alias("champion") is None
    a, b = _save(reg, 0.1), _save(reg, 0.2)
    assert [i.version for i in reg.versions()] == ["v0001", "v0002"] == [a.version, b.version]
    assert b.metrics["model"]["precision_at_10"] == 0.2
    assert b.created_at.tzinfo is not None and b.params == {"components": 4}
    assert len(b.sha256) == 64
    # Nothing temporary left behind.
    assert sorted(p.name for p in reg.root.iterdir()) == ["versions"]
    arrays = reg.load_arrays("v0002")
    assert arrays["w"].tolist() == [0, 1, 2, 3, 4] and arrays["names"].tolist() == ["a", "b"]


def test_unknown_version_and_alias_are_clear_errors(tmp_path):
    reg = Registry(tmp_path / "models")
    _save(reg)
    with pytest.raises(ModelError, match="no model version 'v0009'.*latest: v0001"):
        reg.get("v0009")
    with pytest.raises(ModelError, match="no champion model yet"):
        reg.get("champion")
    with pytest.raises(ModelError, match="unknown alias"):
        reg.alias("best")
    with pytest.raises(ModelError, match="no model version"):
        reg.get("../../etc")


def test_promote_logs_and_switches_alias(tmp_path):
    reg = Registry(tmp_path / "models")
    a, b = _save(reg, 0.1), _save(reg, 0.3)
    reg.set_alias("challenger", b.version)
    first = reg.promote(a.version, "first")
    assert first["from"] is None and first["to"] == "v0001"
    second = reg.promote(b.version, "better")
    assert reg.alias("champion") == "v0002"
    assert reg.alias("challenger") is None  # the challenger became champion
    assert second["from"] == "v0001" and second["deltas"]["precision_at_10"] == pytest.approx(0.2)
    log = reg.promotions()
    assert [e["to"] for e in log] == ["v0001", "v0002"] and log[1]["reason"] == "better"
    assert json.loads(reg.aliases_file.read_text())["champion"] == "v0002"


def test_rollback_walks_back_through_champions(tmp_path):
    reg = Registry(tmp_path / "models")
    for p in (0.1, 0.2, 0.3):
        reg.promote(_save(reg, p).version, "test")
    assert reg.rollback()["to"] == "v0002"
    assert reg.alias("champion") == "v0002"
    assert reg.rollback("again")["to"] == "v0001"
    with pytest.raises(ModelError, match="no previous champion"):
        reg.rollback()
    assert reg.alias("champion") == "v0001"
    assert [e["action"] for e in reg.promotions()] == ["promote"] * 3 + ["rollback"] * 2


def test_rollback_without_history_is_refused(tmp_path):
    reg = Registry(tmp_path / "models")
    with pytest.raises(ModelError, match="no previous champion"):
        reg.rollback()


def test_tampered_artifact_is_refused_before_parsing(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "models")
    info = _save(reg)
    data = bytearray(info.artifact.read_bytes())
    data[-10] ^= 0xFF
    info.artifact.write_bytes(bytes(data))

    def never(*_a, **_k):
        raise AssertionError("a tampered artifact must not be parsed")

    monkeypatch.setattr(np, "load", never)
    with pytest.raises(ModelError, match="does not match its recorded sha256"):
        reg.load_arrays(info.version)


def test_version_number_taken_concurrently_moves_on(tmp_path, monkeypatch):
    reg = Registry(tmp_path / "models")
    _save(reg)
    # Simulate another writer that took v0002 between our scan and our rename.
    monkeypatch.setattr(reg, "_next_number", lambda: 1)
    assert _save(reg).version == "v0002"
