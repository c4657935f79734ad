"""The build on Spark: ``lakehouse build --engine spark`` (``pip install 'lakehouse[spark]'``).

The same views, pandera schemas and rules as on DuckDB, through ibis's
``pyspark`` backend. What differs is how data gets in and out:

- **Reads.** With the Delta format on the session (Databricks, or the Delta
  jars on the classpath) a table is read natively. Otherwise its current
  snapshot is the Parquet files delta-rs lists, read with the table's own
  schema and its folder as ``basePath`` (partition columns included).
- **Intermediate results** are Parquet folders under ``<lake>/.tmp/``,
  computed once, read back by later queries and by the checks.
- **Writes.** Natively where Delta is available; otherwise a result's folder
  is moved into its table's folder and exactly those files are committed
  with delta-rs (:meth:`lakehouse.lake.Lake.commit_files`): no data passes
  through the driver. Nothing is committed before every table passed its
  checks, and a failed build removes every file it wrote.

The lake's path must be the same for the driver and the cluster (local mode,
or a shared mount), since both read and write it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.operations as ops

from lakehouse.errors import ConfigError, LakeError
from lakehouse.lake import (
    BUILD_SCRATCH_PREFIX,
    WriteResult,
    describe_schema_changes,
    remove_build_scratch,
)
from lakehouse.lake.external import SPARK_FOLDER_PREFIX
from lakehouse.sqlguard import first_line
from lakehouse.zones.engine import SPARK, Engine

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from lakehouse.config import Settings
    from lakehouse.lake import Lake

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'lakehouse[spark]'"
REMOTE_ENV = "SPARK_REMOTE"
# Runtime settings every build needs, set on the session (also over Spark Connect):
# UTC like the lake, and Parquet timestamps Delta readers understand (not INT96).
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}
LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
# Settings only a session this module starts can have.
LOCAL_CONF = {
    "spark.ui.showConsoleProgress": "false",
    "spark.ui.enabled": "false",
    # No _SUCCESS marker files in the table folders.
    "spark.hadoop.mapreduce.fileoutputcommitter.marksuccessfuljobs": "false",
    "spark.driver.extraJavaOptions": f"-Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}",
}
NATIVE, EMULATED = "native", "delta-rs"


def _spark_session_class() -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(f"--engine spark needs PySpark: {INSTALL_HINT} "
                          "(and a Java 17 runtime for local Spark)") from None
    return SparkSession


def spark_session(master: str) -> Any:
    """A SparkSession: Spark Connect when ``SPARK_REMOTE`` is set, else ``master``.

    Raises:
        ConfigError: PySpark is not installed.
        LakeError: Spark did not start (no Java, bad master URL, server down).
    """
    session_class = _spark_session_class()
    remote = os.environ.get(REMOTE_ENV)
    try:
        if remote:
            session = session_class.builder.remote(remote).getOrCreate()
        else:
            builder = session_class.builder.master(master).appName("lakehouse build")
            for key, value in LOCAL_CONF.items():
                builder = builder.config(key, value)
            session = builder.getOrCreate()
    except Exception as exc:  # Py4J, gRPC and runtime errors alike: all mean "no Spark"
        where = f"{REMOTE_ENV}={remote}" if remote else f"master {master}"
        raise LakeError(f"cannot start Spark ({where}): {first_line(exc)}; check "
                        "LAKEHOUSE_SPARK_MASTER / SPARK_REMOTE, and that Java 17 is "
                        "installed (java -version) for local Spark") from None
    return session


class SparkEngine(Engine):
    """A build on a Spark session. Make one with :meth:`open`."""

    name = SPARK

    def __init__(self, lake: Lake, session: Any, where: str):
        self.lake = lake
        self.spark = session
        self.where = where
        self.native: bool | None = None  # Delta on the session: found out on the first read
        self._con: ibis.BaseBackend | None = None
        self._scratch: Path | None = None
        self._folders: dict[str, Path] = {}  # temp view -> its Parquet folder
        self._count = 0

    @classmethod
    def open(cls, lake: Lake, settings: Settings, session: Any = None) -> SparkEngine:
        """The engine on ``session``, or on a new one from the settings."""
        if session is None:
            session = spark_session(settings.spark_master)
            where = os.environ.get(REMOTE_ENV) or settings.spark_master
        else:
            where = _master_of(session)
        for key, value in SESSION_CONF.items():
            session.conf.set(key, value)
        return cls(lake, session, where)

    @property
    def con(self) -> ibis.BaseBackend:
        if self._con is None:
            self._con = ibis.pyspark.connect(self.spark)
        return self._con

    def details(self) -> dict[str, Any]:
        return {"engine": self.name, "spark": self.where,
                "delta": NATIVE if self.native else EMULATED}

    @contextmanager
    def session(self) -> Iterator[None]:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        self.started = time.time()
        # Builds hold the lake's build lock: any scratch folder is from one that was killed.
        remove_build_scratch(self.lake.root)
        self._scratch = self.lake.root / ".tmp" / f"{BUILD_SCRATCH_PREFIX}{uuid.uuid4().hex[:12]}"
        try:
            yield
        except (PySparkException, Py4JError) as exc:
            raise LakeError(f"the Spark build failed: {first_line(exc)}") from None
        finally:
            for view in list(self._folders):
                # A session that died with the build cannot drop anything; its files go anyway.
                with suppress(Exception):
                    self.spark.catalog.dropTempView(view)
            self._folders.clear()
            shutil.rmtree(self._scratch, ignore_errors=True)
            _remove_if_empty(self._scratch.parent)

    # ------------------------------------------------------------ reads
    def table(self, name: str) -> ir.Table:
        # delta-rs lists files by their real path: the basePath must be real too
        # (a lake, or a zone in it, can be a symbolic link).
        path = self.lake.path(name).resolve()
        # As on DuckDB: a torn log or a missing or rewritten data file is a
        # BrokenTableError naming the table and what to do, before any Spark job.
        delta = self.lake.check(name)
        if self.native is None:
            self.native = _delta_format_available(self.spark, path)
        schema = ibis.Schema.from_pyarrow(self.lake.schema(name))
        if self.native:
            df = self.spark.read.format("delta").load(str(path))
        else:
            from ibis.backends.pyspark.datatypes import PySparkSchema

            files = [_hadoop_path(uri) for uri in delta.file_uris()]
            reader = _literal_paths(self.spark.read.schema(PySparkSchema.from_ibis(schema)))
            df = (reader.option("basePath", str(path)).parquet(*files) if files
                  else self.spark.createDataFrame([], PySparkSchema.from_ibis(schema)))
        return self._register(df, f"src_{name}", schema)

    def _register(self, df: Any, label: str, schema: ibis.Schema) -> ir.Table:
        self._count += 1
        view = f"_build_{self._count:03d}_{label.replace('.', '__')}"
        df.createOrReplaceTempView(view)
        # The lake's timestamps are instants in UTC; Spark's TIMESTAMP is one too
        # (the session is in UTC), but ibis reads it as zone-less: keep the
        # declared types, so the same schemas validate on both engines.
        return ops.DatabaseTable(view, schema=_instants(schema), source=self.con).to_expr()

    # ------------------------------------------------------------ results
    def temp(self, expr: ir.Table, label: str) -> ir.Table:
        from ibis.backends.pyspark.datatypes import PySparkSchema

        assert self._scratch is not None, "temp() outside session()"
        folder = self._scratch / f"{self._count + 1:03d}-{label.replace('.', '__')}"
        self.spark.sql(self.con.compile(expr)).write.mode("error").parquet(str(folder))
        schema = expr.schema()
        df = _literal_paths(self.spark.read.schema(PySparkSchema.from_ibis(schema))).parquet(
            str(folder))
        table = self._register(df, label, schema)
        self._folders[table.get_name()] = folder
        return table

    def drop(self, table: ir.Table) -> None:
        view = table.get_name()
        self.spark.catalog.dropTempView(view)
        shutil.rmtree(self._folders.pop(view), ignore_errors=True)

    def write(self, name: str, table: ir.Table, metadata: Mapping[str, str]) -> WriteResult:
        folder = self._folders[table.get_name()]
        schema = table.schema().to_pyarrow()
        # A build killed between moving a result in and committing it left files
        # no reader sees; they go before this one's land (kept: any file a version needs).
        self.remove_uncommitted(name)
        if self.native:
            return self._write_native(name, folder, schema, metadata)
        table_dir = self.lake.path(name)
        table_dir.mkdir(parents=True, exist_ok=True)
        dest = table_dir / f"{SPARK_FOLDER_PREFIX}{uuid.uuid4().hex}"
        try:
            # One rename: the files land in the table's folder without being copied.
            os.replace(folder, dest)
        except OSError:  # the table is on another file system (a zone behind a link)
            shutil.move(folder, dest)
        try:
            files = _data_files(dest, table_dir)
            return self.lake.commit_files(name, files, schema, mode="replace", metadata=metadata)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            _remove_if_empty(table_dir)
            raise

    def _write_native(self, name: str, folder: Path, schema: Any,
                      metadata: Mapping[str, str]) -> WriteResult:
        changes = (describe_schema_changes(self.lake.schema(name), schema)
                   if self.lake.exists(name) else [])
        (self.spark.read.parquet(str(folder)).write.format("delta").mode("overwrite")
         .option("overwriteSchema", "true").option("userMetadata", json.dumps(dict(metadata)))
         .save(str(self.lake.path(name))))
        return WriteResult(name, self.lake.version(name) or 0, self.lake.info(name).rows,
                           "replace", changes)


def _instants(schema: ibis.Schema) -> ibis.Schema:
    return ibis.schema({n: _instant(t) for n, t in schema.items()})


def _instant(t: dt.DataType) -> dt.DataType:
    if t.is_timestamp():
        return dt.Timestamp(timezone="UTC", scale=6, nullable=t.nullable)
    if t.is_array():
        return dt.Array(_instant(t.value_type), nullable=t.nullable)
    if t.is_struct():
        return dt.Struct({n: _instant(f) for n, f in t.fields.items()}, nullable=t.nullable)
    return t


def _hadoop_path(uri: str) -> str:
    """One of delta-rs's ``file_uris`` as the path Spark should open.

    delta-rs percent-encodes them (``my%20lake``, ``lake%C3%A9``), and Hadoop
    takes a path's text literally: a lake path with a space or a non-ASCII
    character would find no files. An object store URI keeps its scheme and
    bucket; only its path is decoded.
    """
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(uri)
    if parts.scheme == "file" or not parts.scheme:
        return unquote(parts.path)
    return f"{parts.scheme}://{parts.netloc}{unquote(parts.path)}"


def _literal_paths(reader: Any) -> Any:
    """``reader`` taking paths as they are: a lake folder named ``{a,b}`` or ``*`` is no glob.

    ``__globPaths__`` is Spark's own switch for this (DataSource.GLOB_PATHS_KEY,
    what its file stream source uses); the paths are exact file names anyway.
    """
    return reader.option("__globPaths__", "false")


def _data_files(folder: Path, table_dir: Path) -> list[str]:
    """The Parquet files Spark wrote under ``folder``; its bookkeeping files are removed."""
    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_dir():
            continue
        if path.name.startswith((".", "_")):  # .crc checksums, _SUCCESS markers
            path.unlink()
        elif path.suffix == ".parquet":
            files.append(path.relative_to(table_dir).as_posix())
    return files


def _delta_format_available(spark: Any, path: Path) -> bool:
    """Whether the session reads Delta itself (tried on an existing table).

    Any failure means no: without the Delta jars Spark raises
    DATA_SOURCE_NOT_FOUND, and the delta-rs file lists work everywhere.
    """
    try:
        spark.read.format("delta").load(str(path)).schema  # noqa: B018 (resolves the source)
    except Exception as exc:  # noqa: BLE001
        log.info("no Delta data source on the Spark session (%s): committing with delta-rs",
                 first_line(exc))
        return False
    return True


def _master_of(session: Any) -> str:
    try:
        return session.conf.get("spark.master")
    except Exception:  # Spark Connect hides the master
        return os.environ.get(REMOTE_ENV, "spark connect")


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):
        folder.rmdir()
