"""Settings: defaults < env file < ``LAKEHOUSE_*`` environment variables < CLI options.

Every field of :class:`Settings` can be set from the environment as
``LAKEHOUSE_<FIELD>`` (``LAKEHOUSE_LAKE``, ``LAKEHOUSE_API_URL``, ...), or
from an env file of ``LAKEHOUSE_<FIELD>=value`` lines named by
``LAKEHOUSE_ENV_FILE`` (or ``lakehouse --env-file``), readable by its owner
only, so a crontab need not carry tokens or webhook URLs. All paths derive
from the one lake root. The API token, serving token and alert webhook are
secrets: ``repr`` hides them and no message shows them. Each field declares
its range or choices beside it; every way of making settings checks them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lakehouse.errors import ConfigError
from lakehouse.names import PER_USER_METRICS

ENV_PREFIX = "LAKEHOUSE_"
# The variable naming the env file (itself not a setting: a file cannot name another).
ENV_FILE_VAR = "LAKEHOUSE_ENV_FILE"
# Where ``lakehouse build`` can run its views (Settings.engine).
ENGINES = ("duckdb", "spark")
# Recommendations per user: more is no longer a recommendation, and the
# scoring buffers grow with users x k (k = 10**9 asked for 2 TiB).
MAX_K = 1000
# The source API's largest page (its contract: /users?size= at most 100).
MAX_PAGE_SIZE = 100
# Dates a run may be for: arithmetic around them (a day after, kpi_days before)
# must stay within what Python's dates hold.
MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)
# The longest span a setting may give, in days (about a century): far beyond any
# sane value, far below what dates and timedeltas hold (1e23 hours overflowed).
MAX_DAYS = 36600
DAY_SECONDS = 86_400
# LightFM's losses (Settings.loss).
LOSSES = ("warp", "bpr", "logistic", "warp-kos")


@dataclass(frozen=True)
class Bounds:
    """The range a numeric setting must lie in; NaN and infinities are always refused.

    Attributes:
        low: The lowest value, or None.
        high: The highest value, or None.
        low_open: ``low`` itself is refused.
        high_open: ``high`` itself is refused.
        message: The error for a value out of range, when the generic one
            would not tell the user enough (``{value}`` is replaced).
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    message: str | None = None

    def __contains__(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or value < self.high or (not self.high_open
                                                          and value == self.high)

    def describe(self) -> str:
        """``above 0 and at most 6``: the range in words."""
        lower = f"{'above' if self.low_open else 'at least'} {_number(self.low)}"
        if self.high is None:
            return lower
        return f"{lower} and {'below' if self.high_open else 'at most'} {_number(self.high)}"


def _number(value: float | None) -> str:
    return str(int(value)) if value is not None and float(value).is_integer() else str(value)


def setting(default: Any, *, low: float | None = None, high: float | None = None,
            above: float | None = None, below: float | None = None, secret: bool = False,
            message: str | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A field of :class:`Settings` with its range beside it.

    Args:
        default: The value when neither environment nor option gives one.
        low: The lowest allowed value (``above``: the bound itself excluded).
        high: The highest allowed value (``below``: the bound itself excluded).
        secret: Hidden from ``repr`` and never shown in a message.
        message: The error for a value out of range (``{value}`` is replaced).
        choices: The values a text setting may take.
    """
    metadata: dict[str, Any] = {} if choices is None else {"choices": choices}
    if low is not None or above is not None or high is not None or below is not None:
        metadata["bounds"] = Bounds(low=above if above is not None else low,
                                    high=below if below is not None else high,
                                    low_open=above is not None, high_open=below is not None,
                                    message=message)
    return field(default=default, repr=not secret, metadata=metadata)


def _lake_folder(name: str, doc: str) -> property:
    """A read-only attribute: the folder ``name`` under the settings' lake root."""
    def folder(self: Settings) -> Path:
        return self.lake / name

    folder.__doc__ = doc
    return property(folder)


@dataclass(frozen=True)
class Settings:
    """Every tunable of the lakehouse, with its default and its range."""

    # Where the lake lives; everything else on disk derives from it.
    lake: Path = Path("lake")
    # Source API.
    api_url: str = "http://127.0.0.1:8000"
    api_token: str | None = setting(None, secret=True)
    workers: int = setting(8, low=1, high=256)
    page_size: int = setting(MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE,
                             message=f"page size {{value}} is out of range: the API serves "
                                     f"1..{MAX_PAGE_SIZE} (LAKEHOUSE_PAGE_SIZE)")
    connect_timeout: float = setting(5.0, above=0, high=600)
    read_timeout: float = setting(30.0, above=0, high=3600)
    # Seconds one HTTP attempt may take in all, connecting to the body's last byte: the
    # read timeout bounds each wait, so a source dripping a byte a second never hits it
    # (0: connect_timeout + 2 x read_timeout, 65 s by default).
    request_deadline: float = setting(0.0, low=0, high=86400)
    max_retries: int = setting(6, low=0, high=100)
    backoff_factor: float = setting(0.25, low=0, high=60)
    backoff_max: float = setting(10.0, low=0, high=3600)
    # Recommender.
    components: int = setting(64, low=1, high=4096)
    epochs: int = setting(30, low=1, high=10_000)
    learning_rate: float = setting(0.05, above=0, high=10)
    loss: str = setting("warp", choices=LOSSES)
    item_alpha: float = setting(1e-6, low=0, high=1)
    user_alpha: float = setting(1e-6, low=0, high=1)
    seed: int = setting(42, low=0, high=2**32 - 1)
    k: int = setting(10, low=1, high=MAX_K)
    holdout_share: float = setting(0.2, above=0, below=1)
    # Promote when the lower bound of the bootstrap interval of (challenger - champion),
    # in the primary metric, exceeds this (absolute; the interval already covers noise).
    promote_margin: float = setting(0.0, low=0, high=1)
    # Model selection: seconds for the hyperparameter search of all families (make demo
    # trains twice and stays under 3 minutes), trials per family at most (0: budget only),
    # and the metric that ranks candidates.
    train_budget: float = setting(30.0, low=0, high=7 * DAY_SECONDS)
    train_trials: int = setting(0, low=0, high=100_000)
    primary_metric: str = setting(PER_USER_METRICS[0], choices=PER_USER_METRICS)
    # Threads of LightFM and ALS training (0: the CPUs this process may use). LightFM's
    # parallel SGD is not reproducible run to run; 1 thread is.
    train_threads: int = setting(0, low=0, high=1024)
    # WARP negatives tried per positive: more costs time late in training but ranks better
    # (precision@10 on the default mock data: 0.103 at LightFM's 10, 0.110 at 50).
    max_sampled: int = setting(50, low=1, high=10_000)
    # Monitoring and alerts.
    stale_hours: float = setting(26.0, above=0, high=24 * MAX_DAYS)
    cost_per_cpu_hour: float = setting(0.05, low=0, high=1e6)
    alert_webhook: str | None = setting(None, secret=True)
    alert_command: str | None = None
    alert_window_minutes: float = setting(360.0, low=0, high=24 * 60 * MAX_DAYS)
    max_quarantine_share: float = setting(0.05, low=0, high=1)
    max_row_change: float = setting(0.5, low=0, high=1e6)
    # Recommendations: alert when catalogue coverage moves by more than this share of its
    # previous value (a doubling is 1.0), or the overlap with the previous day's lists by
    # more than this many points (0.25 = 25 points; overlap is a share, so at most 1), from
    # one score date to the next.
    max_coverage_change: float = setting(0.25, above=0, high=1e6)
    max_overlap_change: float = setting(0.25, above=0, high=1)
    # -1: no retrain weekday (lakehouse daily then trains only while there is no champion).
    retrain_weekday: int = setting(0, low=-1, high=6)
    # Online outcomes (lakehouse.monitor.outcomes): days after a score date whose new
    # listens judge its lists (beyond a year every score date would stay open, recomputed
    # daily), and complete dates of champion lift below 1 before an alert.
    online_horizon_days: int = setting(7, low=1, high=366)
    online_lift_days: int = setting(3, low=1, high=366)
    # Build: days of consumption.daily_kpis, ending on the build date.
    kpi_days: int = setting(90, low=1, high=MAX_DAYS)
    # Build: DuckDB memory before it spills to a temporary folder (DuckDB size syntax).
    build_memory: str = "1GB"
    # Ingest: DuckDB memory of the history merge before it spills to a temporary folder
    # (DuckDB size syntax); small, so an ingest's memory stays flat in the snapshot's size.
    merge_memory: str = "128MB"
    # Seconds a step waits for another run of the same step on this lake (--no-wait: none).
    lock_timeout: float = setting(900.0, low=0, high=7 * DAY_SECONDS)
    # History and maintenance (lakehouse.history, lakehouse.maintain).
    # Full raw snapshots kept, in ingest days; older ones go once verified in the history.
    raw_retention_days: int = setting(7, low=1, high=MAX_DAYS)
    # Days of Delta time travel that `maintain` (vacuum) keeps readable.
    time_travel_days: int = setting(30, low=0, high=MAX_DAYS)
    # Below this share of the previous snapshot's keys, a snapshot is refused as a reset.
    reset_threshold: float = setting(0.5, low=0, high=1)
    # The weekday (0 = Monday) the daily job runs `lakehouse maintain`; -1: none
    # (lakehouse maintain then runs only when called).
    maintain_weekday: int = setting(6, low=-1, high=6)
    # Build: where the views run, duckdb or spark (pip install 'lakehouse[spark]').
    engine: str = setting("duckdb", choices=ENGINES)
    # Build on Spark: the master URL when SPARK_REMOTE (Spark Connect) is not set.
    spark_master: str = "local[*]"
    # Serving (lakehouse serve): the bearer token a non-loopback bind needs (a secret),
    # and how often to look for a new version of the recommendations.
    serve_token: str | None = setting(None, secret=True)
    serve_reload_seconds: float = setting(5.0, above=0, high=DAY_SECONDS)
    # MLflow tracking (pip install 'lakehouse[mlflow]'; lakehouse.recsys.tracking): where
    # every train is logged besides the lake's registry, e.g. sqlite:///<lake>/mlflow.db or
    # databricks; None: not logged. A secret (a server URL may carry credentials). Seconds
    # each request to a tracking server may take before the train warns and goes on.
    mlflow_tracking_uri: str | None = setting(None, secret=True)
    mlflow_timeout: float = setting(10.0, above=0, high=600)

    def __post_init__(self) -> None:
        # Every way of making Settings (defaults, environment, options, replace)
        # passes here, so a value no command can use fails once, up front.
        _validate(self)

    # Folders under the lake root (all paths derive from it).
    models_dir = _lake_folder("models", "The model registry's folder.")
    logs_dir = _lake_folder("logs", "Where scheduled runs write their logs.")
    locks_dir = _lake_folder(".locks", "Where per-lake lock files live.")
    reports_dir = _lake_folder("reports", "Where ``lakehouse report`` writes by default.")

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; ``None`` values are ignored.

        This is how CLI options override environment and defaults: an option
        the user did not give arrives as ``None`` and changes nothing.
        """
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **_coerce_all(given))

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, *, env_file: str | Path | None = None,
             **overrides: Any) -> Settings:
        """Settings from defaults, then the env file, the environment, then ``overrides``.

        Args:
            env: The environment to read (``os.environ`` when omitted).
            env_file: A file of ``LAKEHOUSE_<FIELD>=value`` lines (default: the
                one ``LAKEHOUSE_ENV_FILE`` names, if any). It must be readable
                by its owner only (mode 0600): it holds secrets.
            **overrides: Explicit values, typically CLI options; ``None`` means
                "not given".

        Raises:
            ConfigError: A value cannot be parsed as its field's type or is out
                of its range; the env file is missing, open to others, or has a
                line that is not a known ``LAKEHOUSE_<FIELD>=value``.
        """
        env = os.environ if env is None else env
        env_file = env_file or env.get(ENV_FILE_VAR) or None
        from_file = _from_names(read_env_file(Path(env_file).expanduser())) if env_file else {}
        from_env = _from_names(env)
        return cls().replace(**from_file).replace(**from_env).replace(**overrides)


def _from_names(variables: Mapping[str, str]) -> dict[str, str]:
    """The settings that ``LAKEHOUSE_<FIELD>`` variables give (blank ones give none)."""
    given = {}
    for f in fields(Settings):
        raw = variables.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            given[f.name] = raw
    return given


def read_env_file(path: Path) -> dict[str, str]:
    """The ``LAKEHOUSE_<FIELD>=value`` lines of an env file.

    One assignment a line, as a shell or systemd's ``EnvironmentFile`` reads
    them: blank lines and ``#`` comments skipped, an optional ``export``, the
    value optionally in matching quotes (taken as is: nothing is expanded).
    Messages name the line, never its value (it may be a secret).

    Raises:
        ConfigError: The file is missing or unreadable, others may read or
            write it, or a line is not a known setting's assignment.
    """
    import stat

    hint = f"chmod 600 {path}"
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"env file {path} ({ENV_FILE_VAR}) is not a file; name a file of "
                              "LAKEHOUSE_<SETTING>=value lines")
        if info.st_mode & 0o077:
            raise ConfigError(f"env file {path} ({ENV_FILE_VAR}) is open to others (mode "
                              f"{stat.S_IMODE(info.st_mode):04o}); it holds secrets: run "
                              f"`{hint}`")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"env file {path} ({ENV_FILE_VAR}) does not exist; create it "
                          f"(then `{hint}`) or unset {ENV_FILE_VAR}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(f"cannot read env file {path} ({ENV_FILE_VAR}): {reason}") from None
    known = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.removeprefix("export ").partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in known:
            what = f"unknown setting {name}" if sep and name.isidentifier() \
                else "not a NAME=value line"
            raise ConfigError(f"env file {path} line {number}: {what}; write one "
                              "LAKEHOUSE_<SETTING>=value a line (see README, Settings)")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[name] = value
    return values


_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(_TYPES)
    if unknown:
        raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
    return {name: _coerce(name, value) for name, value in values.items()}


def _coerce(name: str, value: Any) -> Any:
    kind = _TYPES[name]
    env_name = ENV_PREFIX + name.upper()
    try:
        if kind == "Path":
            if not str(value).strip():
                # Path("") is ".": an empty --lake would write raw/, history/ and meta/
                # into whatever folder the command runs in (issue 21).
                raise ConfigError(f"setting {name} ({env_name}) is empty; give a folder, "
                                  "e.g. --lake ./lake")
            return Path(value).expanduser()
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
    except (TypeError, ValueError):
        noun = {"int": "an integer", "float": "a number"}.get(kind, kind)
        raise ConfigError(f"setting {name} ({env_name}) must be {noun}, got {value!r}") from None
    return value


# Field -> its range, for every numeric setting (and for the CLI's option types).
BOUNDS: dict[str, Bounds] = {f.name: f.metadata["bounds"] for f in fields(Settings)
                             if "bounds" in f.metadata}
# Field -> the values it may take, for the text settings that are a choice.
CHOICES: dict[str, tuple[str, ...]] = {f.name: f.metadata["choices"] for f in fields(Settings)
                                       if "choices" in f.metadata}


# A choice's error, where the generic "unknown <name>" would read oddly.
_CHOICE_ERRORS = {"primary_metric": "primary metric must be one of {choices}, got {value!r}; "
                                    "set LAKEHOUSE_PRIMARY_METRIC"}


def _validate(settings: Settings) -> None:
    """Raise ConfigError for a setting no command could use.

    Raises:
        ConfigError: Naming the setting and its variable; a secret's value is
            never shown.
    """
    for name, bounds in BOUNDS.items():
        value = getattr(settings, name)
        if value not in bounds and bounds.message:
            raise ConfigError(bounds.message.format(value=value))
        if value not in bounds:
            raise ConfigError(f"setting {name} ({ENV_PREFIX}{name.upper()}) must be "
                              f"{bounds.describe()}, got {value!r}")
    for name, choices in CHOICES.items():
        value = getattr(settings, name)
        if value not in choices:
            template = _CHOICE_ERRORS.get(name, "unknown {name} {value!r} ({env}); use one of "
                                                "{choices}")
            raise ConfigError(template.format(name=name, value=value, choices=", ".join(choices),
                                              env=ENV_PREFIX + name.upper()))
    check_http_url(settings.api_url, "api_url", secret=False)
    if settings.alert_webhook is not None:
        check_http_url(settings.alert_webhook, "alert_webhook", secret=True)
    if settings.mlflow_tracking_uri is not None:
        check_tracking_uri(settings.mlflow_tracking_uri)
    if settings.alert_command is not None:
        import shlex

        try:
            argv = shlex.split(settings.alert_command)
        except ValueError as exc:
            raise ConfigError(f"bad alert command (LAKEHOUSE_ALERT_COMMAND): {exc}; it is split "
                              "like a shell would, e.g. \"tee -a /tmp/alerts.jsonl\"") from None
        if not argv:
            raise ConfigError("bad alert command (LAKEHOUSE_ALERT_COMMAND): it is blank; unset "
                              "it or give a command such as \"tee -a /tmp/alerts.jsonl\"")


def check_http_url(value: str, name: str, *, secret: bool) -> str:
    """``value`` without a trailing slash, if it is an http(s) URL with a host.

    Args:
        value: The URL.
        name: The setting's field, for the message.
        secret: Never show the value (a webhook's path is its secret).

    Raises:
        ConfigError: It is not such a URL.
    """
    from urllib.parse import urlsplit

    env = ENV_PREFIX + name.upper()
    try:
        parts = urlsplit(value or "")
        _ = parts.port  # raises ValueError for a port that is not a number
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        shown = "its value is a secret and is not shown" if secret or "@" in str(value) \
            else f"got {str(value)[:200]!r}"
        label = {"api_url": "API URL (--api-url or ", "alert_webhook": "alert webhook ("}.get(
            name, f"{name} (")
        raise ConfigError(f"bad {label}{env}): use an http:// or https:// URL with a "
                          f"host and a numeric port if any, e.g. "
                          f"{'https://hooks.slack.com/services/...' if secret else 'http://127.0.0.1:8000'}"
                          f"; {shown}")
    return value.rstrip("/")


# MLflow stores the tracking code can write to: a database, a file folder, a server.
TRACKING_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https",
                    "databricks")


def check_tracking_uri(value: str) -> str:
    """``value`` if MLflow can track to it (a URI whose scheme is in ``TRACKING_SCHEMES``).

    Raises:
        ConfigError: No such scheme; the value is shown only when it cannot hold a
            credential.
    """
    # "databricks" alone is a URI (the default profile); sqlite+... names a driver.
    scheme = value.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in TRACKING_SCHEMES:
        shown = ("its value is not shown" if "@" in value or "token" in value.lower()
                 else f"got {value[:200]!r}")
        raise ConfigError(f"bad MLflow tracking URI ({ENV_PREFIX}MLFLOW_TRACKING_URI): use "
                          f"one of {', '.join(s + ':' for s in TRACKING_SCHEMES)}, e.g. "
                          f"sqlite:///lake/mlflow.db, or unset it; {shown}")
    return value


def parse_date(value: dt.date | str | None, what: str = "date") -> dt.date:
    """``value`` as a date: a date, ``YYYY-MM-DD``, ``today`` or None (today, UTC).

    The one date parser of the package: options, run contexts and the mock
    API's settings all read dates here.

    Raises:
        ConfigError: ``value`` is not a date.
    """
    if value is None or value == "today":
        return dt.datetime.now(dt.UTC).date()
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"bad {what}: {value!r} is not a date; use YYYY-MM-DD, "
                          "e.g. 2026-11-26") from None


def check_date(date: dt.date, what: str = "date") -> dt.date:
    """``date`` if a run can be for it (``MIN_DATE``..``MAX_DATE``).

    Raises:
        ConfigError: It is outside that range (9999-12-31 overflowed a day later).
    """
    if not MIN_DATE <= date <= MAX_DATE:
        raise ConfigError(f"{what} {date} is out of range: use a date from {MIN_DATE} "
                          f"to {MAX_DATE}")
    return date
