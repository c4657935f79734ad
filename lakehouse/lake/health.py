"""Health: proving a table reads, saying how to repair one that does not, and clean-up.

A table is healthy when its Delta log loads and every data file it lists is
there with the logged size and row count (:func:`files_problem`, footers
only). A broken one gets a repair hint: its last version that reads, and the
command that rebuilds it. Files no commit knows (a writer killed before its
commit) and the scratch folders of killed Spark builds are removed here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
from deltalake import DeltaTable

from lakehouse import names
from lakehouse.errors import BrokenTableError
from lakehouse.lake import external
from lakehouse.sqlguard import first_line

if TYPE_CHECKING:
    from lakehouse.lake.front import Lake

log = logging.getLogger("lakehouse.lake")

BUILD_SCRATCH_PREFIX = "spark-build-"  # <lake>/.tmp/spark-build-*: a Spark build's scratch



def check(lake: Lake, name: str) -> DeltaTable:
    """Prove that table ``name`` reads, cheaply (log, data files' sizes and row counts).

    Documented at :meth:`~lakehouse.lake.Lake.check`.
    """
    delta = lake.delta(name)  # BrokenTableError when the log does not load
    problem = files_problem(lake.path(name), delta)
    if problem:
        raise BrokenTableError(f"table {name} is unreadable: {problem}; "
                               f"{repair_hint(lake, name, delta.version())}")
    return delta


def repair_hint(lake: Lake, name: str, current: int | None = None) -> str:
    """What to do about a broken table: its last version that reads, and a rerun."""
    zone = name.split(".", 1)[0]
    rerun = {names.RAW: "re-ingest it with 'lakehouse ingest'",
             names.HISTORY: f"move {lake.path(name)} aside and 'lakehouse build' rebuilds "
                            "it from the raw snapshots still kept",
             names.META: f"move {lake.path(name)} aside to start it afresh"}.get(
                 zone, "rebuild it with 'lakehouse build'")
    good = last_good_version(lake, name, current)
    if good is None:
        return rerun
    return (f"time travel to version {good}, the last that reads "
            f"(lake.table({name!r}, version={good})), or {rerun}")


def last_good_version(lake: Lake, name: str, current: int | None, tries: int = 20) -> int | None:
    path = str(lake.path(name))
    if current is None:
        versions = sorted((int(p.stem) for p in (lake.path(name) / "_delta_log").glob(
            "*.json") if p.stem.isdigit()), reverse=True)
        current = versions[0] + 1 if versions else 0
    for version in range(current - 1, max(current - 1 - tries, -1), -1):
        try:
            old = DeltaTable(path, version=version)
        except Exception:  # noqa: BLE001 - any failure means this version does not read
            continue
        if files_problem(lake.path(name), old) is None:
            return version
    return None


def add_actions(delta: DeltaTable) -> pa.Table:
    """The add actions of ``delta``'s snapshot (one row per data file), flattened.

    Read through the Arrow stream interface: ``pa.table()`` of the same
    object first asks whether it is a pandas DataFrame, which imports pandas
    (0.15 s) in processes that need none.
    """
    return pa.RecordBatchReader.from_stream(delta.get_add_actions(flatten=True)).read_all()


def files_problem(root: Path, delta: DeltaTable) -> str | None:
    """The first data file of ``delta``'s snapshot that is missing or not as logged."""
    import pyarrow.parquet as pq

    actions = add_actions(delta)
    columns = actions.column_names
    paths = actions.column("path").to_pylist() if actions.num_rows else []
    sizes = actions.column("size_bytes").to_pylist() if "size_bytes" in columns else []
    counts = (actions.column("num_records").to_pylist() if "num_records" in columns
              else [None] * len(paths))
    for rel, size, count in zip(paths, sizes, counts, strict=False):
        path = local_file(root, rel)
        try:
            actual = path.stat().st_size
        except OSError:
            return f"data file {rel} is missing"
        if size is not None and actual != size:
            return f"data file {rel} has {actual} bytes where its log says {size}"
        if count is not None:
            try:
                rows = pq.read_metadata(path).num_rows
            except (OSError, pa.ArrowException) as exc:
                return f"data file {rel} is not readable Parquet ({first_line(exc)})"
            if rows != count:
                return f"data file {rel} has {rows} rows where its log says {count}"
    return None


def local_file(root: Path, path: str) -> Path:
    """A data file's local path: add-action paths are relative to the table, or URIs."""
    from urllib.parse import unquote, urlparse

    if "://" in path:
        return Path(unquote(urlparse(path).path))
    return root / path


def remove_uncommitted(lake: Lake, name: str, before: float) -> list[str]:
    """Delete the data files of ``name`` that no version of its Delta log knows.

    Documented at :meth:`~lakehouse.lake.Lake.remove_uncommitted`.
    """
    table_dir = lake.path(name)
    if not table_dir.is_dir():
        return []
    removed = []
    for path in external.uncommitted_files(table_dir, before):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            removed.append(path.relative_to(table_dir).as_posix())
    # Folders the removed files leave empty (partition folders, a Spark result's).
    for folder in sorted((p for p in table_dir.rglob("*") if p.is_dir()
                          and "_delta_log" not in p.relative_to(table_dir).parts),
                         key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()
    if removed:
        log.warning("removed %d uncommitted file(s) from %s, left by a writer that died "
                    "before committing", len(removed), name)
    return removed


def remove_build_scratch(root: Path) -> int:
    """Delete the scratch folders killed builds left under ``root/.tmp``; bytes freed.

    The caller holds the lake's build lock: no build is running, so nothing
    reads them.
    """
    freed = 0
    for stale in (Path(root) / ".tmp").glob(BUILD_SCRATCH_PREFIX + "*"):
        freed += du(stale)
        shutil.rmtree(stale, ignore_errors=True)
    return freed


def du(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, f)).st_size
    return total

