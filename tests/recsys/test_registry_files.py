"""The registry does not trust its files (issue 11, item 8): each damaged file
is a one-line ModelError, promote/rollback verify the checksum first, and
status reports a champion that does not read."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from lakehouse.cli import cli
from lakehouse.errors import ModelError
from lakehouse.monitor.status import status
from lakehouse.recsys.registry import Registry
from tests.conftest import settings_for


def _save(reg: Registry):
    return reg.save({"w": np.arange(3, dtype=np.float32)},
                    {"params": {"components": 4}, "metrics": {"model": {}, "baseline": {}},
                     "lineage": {}})


@pytest.fixture
def registry(tmp_path) -> Registry:
    reg = Registry(tmp_path / "lake" / "models")
    _save(reg)
    _save(reg)
    reg.promote("v0001", "first")
    reg.promote("v0002", "second")
    return reg


def aliases_list(reg): reg.aliases_file.write_text('["v0001"]')
def aliases_number(reg): reg.aliases_file.write_text('{"champion": 3}')
def aliases_garbage(reg): reg.aliases_file.write_text('{"champion": "../../etc"}')
def meta_no_created_at(reg): _edit_meta(reg, "v0002", lambda m: m.pop("created_at"))
def meta_bad_components(reg): _edit_meta(reg, "v0002", lambda m: m["params"].update(components="abc"))
def meta_list(reg): (reg.versions_dir / "v0002" / "model.json").write_text("[1, 2]")
def meta_garbage(reg): (reg.versions_dir / "v0002" / "model.json").write_text("{not json")
def meta_bad_metrics(reg): _edit_meta(reg, "v0002", lambda m: m["metrics"].update(model="x"))
def log_garbage(reg):
    with open(reg.log_file, "a") as fh:
        fh.write("garbage\n")


def _edit_meta(reg, version, change):
    path = reg.versions_dir / version / "model.json"
    meta = json.loads(path.read_text())
    change(meta)
    path.write_text(json.dumps(meta))


DAMAGE = [aliases_list, aliases_number, aliases_garbage, meta_no_created_at,
          meta_bad_components, meta_list, meta_garbage, meta_bad_metrics]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_a_damaged_file_is_a_one_line_model_error(registry, damage):
    damage(registry)
    with pytest.raises(ModelError) as info:
        registry.get("champion")
    assert "\n" not in str(info.value)
    lake = registry.root.parent
    one_line = [["models", "show", "champion"]]
    if damage.__name__.startswith("aliases"):
        one_line.append(["models", "list"])
    for args in one_line:
        result = CliRunner().invoke(cli, ["--lake", str(lake), *args])
        assert result.exit_code == 1, (args, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, \
            result.output
    if damage.__name__.startswith("meta"):
        # One damaged model.json no longer hides the registry (issue 21): the rest is
        # listed, the damaged version marked, and the exit code says something is wrong.
        result = CliRunner().invoke(cli, ["--lake", str(lake), "models", "list"])
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        assert any(line.startswith("v0001") and "UNREADABLE" not in line for line in lines)
        assert any(line.startswith("v0002") and "UNREADABLE" in line for line in lines)
        assert lines[-1].startswith("Error: 1 model version(s) cannot be read: model v0002")


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__)
def test_status_reports_a_champion_that_does_not_read(registry, damage):
    damage(registry)
    st = status(settings_for(registry.root.parent))
    [problem] = [p for p in st.problems if p.kind == "model_unreadable"]
    assert problem.severity == "error" and not st.healthy


def test_a_garbage_promotion_log_line_is_a_model_error(registry):
    log_garbage(registry)
    with pytest.raises(ModelError, match="line 3 is not a promotion entry"):
        registry.rollback()
    result = CliRunner().invoke(cli, ["--lake", str(registry.root.parent), "models", "rollback"])
    assert result.exit_code == 1 and result.output.count("\n") == 1


def test_a_dangling_champion_is_unhealthy(registry):
    import shutil

    shutil.rmtree(registry.versions_dir / "v0002")
    st = status(settings_for(registry.root.parent))
    assert any(p.kind == "model_unreadable" and "v0002" in p.message for p in st.problems)


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_promote_and_rollback_verify_the_checksum_before_switching(registry, action):
    (registry.versions_dir / "v0001" / "model.npz").write_bytes(b"tampered")
    with pytest.raises(ModelError, match="sha256"):
        registry.promote("v0001", "x") if action == "promote" else registry.rollback()
    assert registry.alias("champion") == "v0002"
    assert len(registry.promotions()) == 2
