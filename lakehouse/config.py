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


@dataclass(frozen=True)
class Settings:
    """Every tunable of the lakehouse, with its default."""

    # Where the lake lives; everything else on disk derives from it.
    lake: Path = Path("lake")
    # Source API.
    api_url: str = "http://127.0.0.1:8000"
    api_token: str | None = field(default=None, repr=False)
    workers: int = 8
    page_size: int = 100
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    max_retries: int = 6
    backoff_factor: float = 0.25
    backoff_max: float = 10.0
    # Recommender.
    components: int = 64
    epochs: int = 30
    learning_rate: float = 0.05
    loss: str = "warp"
    item_alpha: float = 1e-6
    user_alpha: float = 1e-6
    seed: int = 42
    k: int = 10
    holdout_share: float = 0.2
    # Promote when the lower bound of the bootstrap interval of (challenger - champion),
    # in the primary metric, exceeds this (absolute; the interval already covers noise).
    promote_margin: float = 0.0
    # Model selection: seconds for the hyperparameter search of all families (make demo
    # trains twice and stays under 3 minutes), trials per family at most (0: budget only),
    # and the metric that ranks candidates.
    train_budget: float = 30.0
    train_trials: int = 0
    primary_metric: str = "precision_at_10"
    # Threads of LightFM and ALS training (0: the CPUs this process may use). LightFM's
    # parallel SGD is not reproducible run to run; 1 thread is.
    train_threads: int = 0
    # WARP negatives tried per positive: more costs time late in training but ranks better
    # (precision@10 on the default mock data: 0.103 at LightFM's 10, 0.110 at 50).
    max_sampled: int = 50
    # Monitoring and alerts.
    stale_hours: float = 26.0
    cost_per_cpu_hour: float = 0.05
    alert_webhook: str | None = field(default=None, repr=False)
    alert_command: str | None = None
    alert_window_minutes: float = 360.0
    max_quarantine_share: float = 0.05
    max_row_change: float = 0.5
    # Recommendations: alert when catalogue coverage moves by more than this share of its
    # previous value, or the overlap with the previous day's lists by more than this many
    # points (0.25 = 25 points), from one score date to the next.
    max_coverage_change: float = 0.25
    max_overlap_change: float = 0.25
    retrain_weekday: int = 0
    # Build: days of consumption.daily_kpis, ending on the build date.
    kpi_days: int = 90
    # Build: DuckDB memory before it spills to a temporary folder (DuckDB size syntax).
    build_memory: str = "1GB"
    # Seconds a step waits for another run of the same step on this lake (--no-wait: none).
    lock_timeout: float = 900.0
    # History and maintenance (lakehouse.history, lakehouse.maintain).
    # Full raw snapshots kept, in ingest days; older ones go once verified in the history.
    raw_retention_days: int = 7
    # Days of Delta time travel that `maintain` (vacuum) keeps readable.
    time_travel_days: int = 30
    # Below this share of the previous snapshot's keys, a snapshot is refused as a reset.
    reset_threshold: float = 0.5
    # The weekday (0 = Monday) the daily job runs `lakehouse maintain`.
    maintain_weekday: int = 6
    # Build: where the views run, duckdb or spark (pip install 'lakehouse[spark]').
    engine: str = "duckdb"
    # Build on Spark: the master URL when SPARK_REMOTE (Spark Connect) is not set.
    spark_master: str = "local[*]"
    # Serving (lakehouse serve): the bearer token a non-loopback bind needs (a secret),
    # and how often to look for a new version of the recommendations.
    serve_token: str | None = field(default=None, repr=False)
    serve_reload_seconds: float = 5.0

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


# Recommendations per user: more is no longer a recommendation, and the
# scoring buffers grow with users x k (k = 10**9 asked for 2 TiB).
MAX_K = 1000
# Dates a run may be for: arithmetic around them (a day after, kpi_days before)
# must stay within what Python's dates hold.
MIN_DATE = dt.date(1970, 1, 1)
MAX_DATE = dt.date(2999, 12, 31)

# Field -> (low, high): the range a numeric setting must lie in, None for
# unbounded; a bound in parentheses, e.g. "(0", excludes it. NaN and
# infinities are refused for every float.
_RANGES: dict[str, tuple[str, str | None]] = {
    "workers": ("1", None), "page_size": ("1", None),
    "connect_timeout": ("(0", None), "read_timeout": ("(0", None),
    "max_retries": ("0", None), "backoff_factor": ("0", None), "backoff_max": ("0", None),
    "components": ("1", None), "epochs": ("1", None), "learning_rate": ("(0", None),
    "item_alpha": ("0", None), "user_alpha": ("0", None), "seed": ("0", str(2**32 - 1)),
    "k": ("1", str(MAX_K)), "holdout_share": ("(0", "1)"), "promote_margin": ("0", None),
    "max_sampled": ("1", None), "stale_hours": ("(0", None), "cost_per_cpu_hour": ("0", None),
    "alert_window_minutes": ("0", None), "max_quarantine_share": ("0", "1"),
    "max_row_change": ("0", None), "retrain_weekday": ("-1", "6"), "kpi_days": ("1", "36600"),
    # -1: no retrain weekday (lakehouse daily then trains only while there is no champion).
    "lock_timeout": ("0", None),
    "train_budget": ("0", None), "train_trials": ("0", None), "train_threads": ("0", None),
    "raw_retention_days": ("1", None), "time_travel_days": ("0", None),
    # -1: no maintenance weekday (lakehouse maintain then runs only when called).
    "reset_threshold": ("0", "1"), "maintain_weekday": ("-1", "6"),
    # Coverage moves by a share of its previous value (a doubling is 1.0); overlap is
    # itself a share, so it cannot move by more than 1.
    "max_coverage_change": ("(0", None), "max_overlap_change": ("(0", "1"),
    "serve_reload_seconds": ("(0", None),
}


def _validate(settings: Settings) -> None:
    """Raise ConfigError for a setting no command could use.

    Raises:
        ConfigError: Naming the setting and its variable; a secret's value is
            never shown.
    """
    for name, (low, high) in _RANGES.items():
        value = getattr(settings, name)
        if not _in_range(value, low, high):
            raise ConfigError(f"setting {name} ({ENV_PREFIX}{name.upper()}) must be "
                              f"{_describe_range(low, high)}, got {value!r}")
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


def _in_range(value: float, low: str, high: str | None) -> bool:
    if isinstance(value, float) and not math.isfinite(value):
        return False
    low_value = float(low.lstrip("("))
    if value < low_value or (low.startswith("(") and value == low_value):
        return False
    if high is None:
        return True
    high_value = float(high.rstrip(")"))
    return value < high_value if high.endswith(")") else value <= high_value


def _describe_range(low: str, high: str | None) -> str:
    lower = f"above {low[1:]}" if low.startswith("(") else f"at least {low}"
    if high is None:
        return lower
    upper = f"below {high[:-1]}" if high.endswith(")") else f"at most {high}"
    return f"{lower} and {upper}"


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


def check_date(date: dt.date, what: str = "date") -> dt.date:
    """``date`` if a run can be for it (``MIN_DATE``..``MAX_DATE``).

    Raises:
        ConfigError: It is outside that range (9999-12-31 overflowed a day later).
    """
    if not MIN_DATE <= date <= MAX_DATE:
        raise ConfigError(f"{what} {date} is out of range: use a date from {MIN_DATE} "
                          f"to {MAX_DATE}")
    return date
