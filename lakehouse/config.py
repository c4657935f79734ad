"""Settings: defaults < ``LAKEHOUSE_*`` environment variables < CLI options.

Every field of :class:`Settings` can be set from the environment as
``LAKEHOUSE_<FIELD>`` (``LAKEHOUSE_LAKE``, ``LAKEHOUSE_API_URL``, ...). All
paths derive from the one lake root. The API token and alert webhook are
secrets: they come from the environment or an option, and ``repr`` hides them.
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

ENV_PREFIX = "LAKEHOUSE_"
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
            message: str | None = None) -> Any:
    """A field of :class:`Settings` with its range beside it.

    Args:
        default: The value when neither environment nor option gives one.
        low: The lowest allowed value (``above``: the bound itself excluded).
        high: The highest allowed value (``below``: the bound itself excluded).
        secret: Hidden from ``repr`` and never shown in a message.
        message: The error for a value out of range (``{value}`` is replaced).
    """
    metadata: dict[str, Any] = {}
    if low is not None or above is not None or high is not None or below is not None:
        metadata["bounds"] = Bounds(low=above if above is not None else low,
                                    high=below if below is not None else high,
                                    low_open=above is not None, high_open=below is not None,
                                    message=message)
    return field(default=default, repr=not secret, metadata=metadata)


@dataclass(frozen=True)
class Settings:
    """Every tunable of the lakehouse, with its default and its range."""

    # Where the lake lives; everything else on disk derives from it.
    lake: Path = Path("lake")
    # Source API.
    api_url: str = "http://127.0.0.1:8000"
    api_token: str | None = setting(None, secret=True)
    workers: int = setting(8, low=1)
    page_size: int = setting(MAX_PAGE_SIZE, low=1, high=MAX_PAGE_SIZE,
                             message=f"page size {{value}} is out of range: the API serves "
                                     f"1..{MAX_PAGE_SIZE} (LAKEHOUSE_PAGE_SIZE)")
    connect_timeout: float = setting(5.0, above=0)
    read_timeout: float = setting(30.0, above=0)
    max_retries: int = setting(6, low=0)
    backoff_factor: float = setting(0.25, low=0)
    backoff_max: float = setting(10.0, low=0)
    # Recommender.
    components: int = setting(64, low=1)
    epochs: int = setting(30, low=1)
    learning_rate: float = setting(0.05, above=0)
    loss: str = "warp"
    item_alpha: float = setting(1e-6, low=0)
    user_alpha: float = setting(1e-6, low=0)
    seed: int = setting(42, low=0, high=2**32 - 1)
    k: int = setting(10, low=1, high=MAX_K)
    holdout_share: float = setting(0.2, above=0, below=1)
    # Promote when the lower bound of the bootstrap interval of (challenger - champion),
    # in the primary metric, exceeds this (absolute; the interval already covers noise).
    promote_margin: float = setting(0.0, low=0)
    # Model selection: seconds for the hyperparameter search of all families (make demo
    # trains twice and stays under 3 minutes), trials per family at most (0: budget only),
    # and the metric that ranks candidates.
    train_budget: float = setting(30.0, low=0)
    train_trials: int = setting(0, low=0)
    primary_metric: str = "precision_at_10"
    # Threads of LightFM and ALS training (0: the CPUs this process may use). LightFM's
    # parallel SGD is not reproducible run to run; 1 thread is.
    train_threads: int = setting(0, low=0)
    # WARP negatives tried per positive: more costs time late in training but ranks better
    # (precision@10 on the default mock data: 0.103 at LightFM's 10, 0.110 at 50).
    max_sampled: int = setting(50, low=1)
    # Monitoring and alerts.
    stale_hours: float = setting(26.0, above=0)
    cost_per_cpu_hour: float = setting(0.05, low=0)
    alert_webhook: str | None = setting(None, secret=True)
    alert_command: str | None = None
    alert_window_minutes: float = setting(360.0, low=0)
    max_quarantine_share: float = setting(0.05, low=0, high=1)
    max_row_change: float = setting(0.5, low=0)
    # Recommendations: alert when catalogue coverage moves by more than this share of its
    # previous value (a doubling is 1.0), or the overlap with the previous day's lists by
    # more than this many points (0.25 = 25 points; overlap is a share, so at most 1), from
    # one score date to the next.
    max_coverage_change: float = setting(0.25, above=0)
    max_overlap_change: float = setting(0.25, above=0, high=1)
    # -1: no retrain weekday (lakehouse daily then trains only while there is no champion).
    retrain_weekday: int = setting(0, low=-1, high=6)
    # Build: days of consumption.daily_kpis, ending on the build date.
    kpi_days: int = setting(90, low=1, high=36600)
    # Build: DuckDB memory before it spills to a temporary folder (DuckDB size syntax).
    build_memory: str = "1GB"
    # Seconds a step waits for another run of the same step on this lake (--no-wait: none).
    lock_timeout: float = setting(900.0, low=0)
    # History and maintenance (lakehouse.history, lakehouse.maintain).
    # Full raw snapshots kept, in ingest days; older ones go once verified in the history.
    raw_retention_days: int = setting(7, low=1)
    # Days of Delta time travel that `maintain` (vacuum) keeps readable.
    time_travel_days: int = setting(30, low=0)
    # Below this share of the previous snapshot's keys, a snapshot is refused as a reset.
    reset_threshold: float = setting(0.5, low=0, high=1)
    # The weekday (0 = Monday) the daily job runs `lakehouse maintain`; -1: none
    # (lakehouse maintain then runs only when called).
    maintain_weekday: int = setting(6, low=-1, high=6)
    # Build: where the views run, duckdb or spark (pip install 'lakehouse[spark]').
    engine: str = "duckdb"
    # Build on Spark: the master URL when SPARK_REMOTE (Spark Connect) is not set.
    spark_master: str = "local[*]"
    # Serving (lakehouse serve): the bearer token a non-loopback bind needs (a secret),
    # and how often to look for a new version of the recommendations.
    serve_token: str | None = setting(None, secret=True)
    serve_reload_seconds: float = setting(5.0, above=0)

    def __post_init__(self) -> None:
        # Every way of making Settings (defaults, environment, options, replace)
        # passes here, so a value no command can use fails once, up front.
        _validate(self)

    @property
    def models_dir(self) -> Path:
        """The model registry's folder."""
        return self.lake / "models"

    @property
    def logs_dir(self) -> Path:
        """Where scheduled runs write their logs."""
        return self.lake / "logs"

    @property
    def locks_dir(self) -> Path:
        """Where per-lake lock files live."""
        return self.lake / ".locks"

    @property
    def reports_dir(self) -> Path:
        """Where ``lakehouse report`` writes by default."""
        return self.lake / "reports"

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed; ``None`` values are ignored.

        This is how CLI options override environment and defaults: an option
        the user did not give arrives as ``None`` and changes nothing.
        """
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **_coerce_all(given))

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from defaults, then the environment, then ``overrides``.

        Args:
            env: The environment to read (``os.environ`` when omitted).
            **overrides: Explicit values, typically CLI options; ``None`` means
                "not given".

        Raises:
            ConfigError: A value cannot be parsed as its field's type.
        """
        env = os.environ if env is None else env
        from_env = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is not None and raw != "":
                from_env[f.name] = raw
        return cls().replace(**from_env).replace(**overrides)


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
    check_http_url(settings.api_url, "api_url", secret=False)
    if settings.engine not in ENGINES:
        raise ConfigError(f"unknown engine {settings.engine!r} ({ENV_PREFIX}ENGINE); "
                          f"use one of {', '.join(ENGINES)}")
    if settings.alert_webhook is not None:
        check_http_url(settings.alert_webhook, "alert_webhook", secret=True)
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
