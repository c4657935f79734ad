"""Settings: defaults < ``LAKEHOUSE_*`` environment variables < CLI options.

Every field of :class:`Settings` can be set from the environment as
``LAKEHOUSE_<FIELD>`` (``LAKEHOUSE_LAKE``, ``LAKEHOUSE_API_URL``, ...). All
paths derive from the one lake root. The API token and alert webhook are
secrets: they come from the environment or an option, and ``repr`` hides them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from lakehouse.errors import ConfigError

ENV_PREFIX = "LAKEHOUSE_"


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
    promote_margin: float = 0.01
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
    # Serving (lakehouse serve): the bearer token a non-loopback bind needs (a secret),
    # and how often to look for a new version of the recommendations.
    serve_token: str | None = field(default=None, repr=False)
    serve_reload_seconds: float = 5.0

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
