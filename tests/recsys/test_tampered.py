"""Tampered model bundles whose checksum was updated to match (issue 21, item 7).

A checksum proves the artifact is the registered one, not that it is sound:
each bundle here is rewritten, its sha256 updated, and must then be refused
as it loads (shapes, dtypes, id maps), in one line, with nothing written.
"""

from __future__ import annotations

import io
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from lakehouse import names
from lakehouse.cli import cli
from lakehouse.errors import ModelError
from lakehouse.lake import Lake
from lakehouse.recsys.registry import ARTIFACT, META, Registry, UnreadableVersion, sha256_bytes
from tests.conftest import copy_lake

Arrays = dict[str, np.ndarray]


def rewrite(models: Path, version: str, change: Callable[[Arrays], Arrays],
            allow_pickle: bool = False) -> None:
    """Change the artifact of ``version`` and record its new sha256, as a tamperer would."""
    folder = models / "versions" / version
    with np.load(folder / ARTIFACT, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    buffer = io.BytesIO()
    np.savez(buffer, allow_pickle=allow_pickle, **change(arrays))
    data = buffer.getvalue()
    (folder / ARTIFACT).write_bytes(data)
    meta = json.loads((folder / META).read_text())
    meta["sha256"] = sha256_bytes(data)
    (folder / META).write_text(json.dumps(meta))


def cut_ids(arrays: Arrays) -> Arrays:
    key = "warm__item_ids" if "warm__item_ids" in arrays else "item_ids"
    return {**arrays, key: arrays[key][:100]}


def narrow_factors(arrays: Arrays) -> Arrays:
    key = next(k for k, v in arrays.items() if v.ndim == 2)
    return {**arrays, key: arrays[key][:, :-1]}


def flat_ids(arrays: Arrays) -> Arrays:
    key = next(k for k in arrays if k.endswith("item_ids"))
    return {**arrays, key: arrays[key].reshape(-1, 1)}


def nan_scores(arrays: Arrays) -> Arrays:
    key = next(k for k, v in arrays.items() if v.dtype.kind == "f")
    value = arrays[key].copy()
    value.flat[0] = np.nan
    return {**arrays, key: value}


def object_ids(arrays: Arrays) -> Arrays:
    key = next(k for k in arrays if k.endswith("item_ids"))
    return {**arrays, key: arrays[key].astype(object)}


def text_scores(arrays: Arrays) -> Arrays:
    key = next(k for k, v in arrays.items() if v.dtype.kind == "f")
    return {**arrays, key: arrays[key].astype(str)}


def missing_array(arrays: Arrays) -> Arrays:
    key = next(k for k in arrays if k.endswith("item_ids"))
    return {k: v for k, v in arrays.items() if k != key}


TAMPERING = {"item ids cut to 100": (cut_ids, "rows for"),
             "factors one column short": (narrow_factors, "do not fit together|do not match"),
             "ids not one per row": (flat_ids, "not one id per row"),
             "a NaN": (nan_scores, "NaN"),
             "an object array": (object_ids, "plain arrays"),
             "scores as text": (text_scores, "holds <U"),
             "an array missing": (missing_array, "missing")}


@pytest.fixture
def lake(tmp_path, trained_lake):
    return copy_lake(trained_lake, tmp_path)


@pytest.mark.parametrize("how", list(TAMPERING), ids=str)
def test_a_tampered_bundle_is_refused_as_it_loads(lake, how):
    change, words = TAMPERING[how]
    registry = Registry(lake.models_dir)
    champion = registry.alias(names.CHAMPION)
    arrays = registry.load_arrays(champion)
    if how == "factors one column short" and not any(v.ndim == 2 for v in arrays.values()):
        pytest.skip("the champion has no factor matrix (popularity)")
    rewrite(lake.models_dir, champion, change, allow_pickle=how == "an object array")
    with pytest.raises(ModelError, match=words) as caught:
        registry.load_bundle(champion)
    assert champion in str(caught.value) and "\n" not in str(caught.value)

    before = Lake(lake.lake).version(names.CONS_RECOMMENDATIONS)
    result = CliRunner().invoke(cli, ["--lake", str(lake.lake), "recommend"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert "Traceback" not in result.output
    assert Lake(lake.lake).version(names.CONS_RECOMMENDATIONS) == before


def test_the_untouched_bundle_still_loads(lake):
    registry = Registry(lake.models_dir)
    assert registry.load_bundle(names.CHAMPION).warm.known_users().size


def test_models_list_lists_the_rest_and_marks_an_unreadable_version(lake):
    registry = Registry(lake.models_dir)
    champion = registry.alias(names.CHAMPION)
    # A second, newer version (a copy), then the old one's model.json damaged.
    number = int(champion[1:]) + 1
    newer = f"v{number:04d}"
    shutil.copytree(lake.models_dir / "versions" / champion, lake.models_dir / "versions" / newer)
    (lake.models_dir / "versions" / champion / META).write_text("{ torn")

    found = registry.scan()
    assert [type(v) for v in found] == [UnreadableVersion, type(registry.get(newer))]
    assert [i.version for i in registry.versions()] == [newer]
    assert champion in registry.unreadable()

    result = CliRunner().invoke(cli, ["--lake", str(lake.lake), "models", "list"])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert any(line.startswith(newer) for line in lines), result.output
    assert any(line.startswith(champion) and "UNREADABLE" in line for line in lines)
    assert lines[-1].startswith("Error: 1 model version(s) cannot be read") and champion in \
        lines[-1]


@pytest.mark.parametrize("trend", [5.0, -0.2, "much"])
def test_a_tampered_trend_blend_is_refused_in_one_line(lake, trend):
    """model.json's configuration is read too: a blend weight outside (0, 1) is refused."""
    registry = Registry(lake.models_dir)
    champion = registry.alias(names.CHAMPION)
    path = lake.models_dir / "versions" / champion / META
    meta = json.loads(path.read_text())
    meta["params"]["config"]["params"].update(trend=trend, trend_days=3.0)
    path.write_text(json.dumps(meta))
    before = Lake(lake.lake).version(names.CONS_RECOMMENDATIONS)
    result = CliRunner().invoke(cli, ["--lake", str(lake.lake), "recommend"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and len(result.output.splitlines()) == 1
    assert "trend" in result.output and "Traceback" not in result.output
    assert Lake(lake.lake).version(names.CONS_RECOMMENDATIONS) == before
