"""The showcase: the whole daily job, several simulated days, on the bundled mock API.

``lakehouse demo`` (``make demo``) starts the mock API on a free loopback
port, then for each simulated day switches the API to that date and runs what
cron would run, :func:`lakehouse.daily.daily` (training once enough history
exists, and again at the end so a challenger meets the champion). It ends
with the HTML report and stops the API.
"""

from __future__ import annotations

import datetime as dt
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse import names
from lakehouse.config import Settings
from lakehouse.errors import LakeError
from lakehouse.lake import Lake

MARKER = ".demo-lake"
# Seconds of hyperparameter search per training in the demo. The demo trains twice on
# five small days: with train's default budget (30 s) that alone took a minute of a
# first run; a few seconds still tunes every family once and picks the same champion
# kind on the mock data. `lakehouse demo --budget` changes it.
DEMO_TRAIN_BUDGET = 5.0
# The daily job's steps shown on each day's line (the report and status are summed up last).
_SHOWN = names.STEPS


@dataclass
class DemoResult:
    """What the demo did."""

    lake: Path
    days: list[dt.date]
    report: Path | None = None
    champion: str | None = None
    precision: tuple[float, float] | None = None  # champion's precision@10, popularity's
    failed_steps: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # The last model search: one dict per candidate (name, trials, search seconds,
    # precision@10 on the test users, why it was skipped).
    candidates: list[dict] = field(default_factory=list)

    def candidates_lines(self) -> list[str]:
        """The last search's candidates table, one line per family, for people."""
        if not self.candidates:
            return []
        width = max(len(c["name"]) for c in self.candidates)
        lines = [f"  {'candidate':<{width}}  trials  seconds  p@10"]
        for c in self.candidates:
            p = (c.get("test") or {}).get(names.PRECISION_AT_10)
            shown = f"{p:.3f}" if p is not None else "  -  "
            lines.append(f"  {c['name']:<{width}}  {c['trials']:>6}  {c['search_seconds']:>7.1f}"
                         f"  {shown}" + (f"  skipped: {c['skipped']}" if c.get("skipped")
                                         else ""))
        return lines


# Files a checkout's lake/ folder ships with: kept, and not a sign of someone's data.
KEPT = (".gitignore", "README.md")


def prepare_demo_lake(root: Path) -> None:
    """Make ``root`` an empty demo lake, refusing to touch a folder the demo did not make.

    Only an empty folder (or one holding nothing but the checkout's
    ``.gitignore``/``README.md``) or a folder carrying the demo's marker may be
    cleared: anything else is someone's lake, or someone's files.

    Raises:
        LakeError: ``root`` is a file, or a folder with other content and no marker.
    """
    if root.exists() and not root.is_dir():
        raise LakeError(f"{root} is a file, not a folder; run the demo with --lake PATH "
                        "pointing at a new or empty folder (e.g. lakehouse --lake demo-lake demo)")
    if root.exists():
        others = sorted(c.name for c in root.iterdir() if c.name not in KEPT)
        if others and not (root / MARKER).exists():
            what = ("a lake that the demo did not create"
                    if any(n in ("raw", "standardized", "consumption") for n in others)
                    else f"files the demo did not create ({', '.join(others[:3])}"
                         f"{', ...' if len(others) > 3 else ''})")
            raise LakeError(
                f"{root} already holds {what}; nothing was deleted: run the demo in a new or "
                "empty folder with --lake PATH (e.g. lakehouse --lake demo-lake demo)")
        for child in root.iterdir():
            if child.name in KEPT:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("created by 'lakehouse demo'; safe to delete\n")


def run_demo(settings: Settings, *, days: int = 5, seed: int = 42,
             train_budget: float = DEMO_TRAIN_BUDGET,
             echo: Callable[[str], None] = print, **mock_fields: object) -> DemoResult:
    """Run ingest -> build -> train -> recommend over ``days`` simulated days.

    Args:
        settings: The lake (``settings.lake``) is emptied first if it is a
            demo lake; a lake with other data is refused.
        days: Simulated days, at least 3 (training needs history).
        seed: The mock API's seed: same seed, same data, same results.
        train_budget: Seconds of hyperparameter search per training: the
            demo's own (:data:`DEMO_TRAIN_BUDGET`), not ``settings.train_budget``.
        echo: Where progress lines go.
        **mock_fields: Other :class:`MockConfig` fields (e.g. ``users=300``).

    Returns:
        The days simulated, the report path, the champion model version and
        any step that failed.
    """
    from lakehouse.context import RunContext
    from lakehouse.daily import SKIPPED, SUCCESS, daily
    from lakehouse.mockapi.data import MockConfig
    from lakehouse.mockapi.testing import running_mock_api
    from lakehouse.monitor.sinks import SettingsSinks
    from lakehouse.recsys.registry import Registry

    days = max(days, 3)
    t0 = time.perf_counter()
    settings = settings.replace(train_budget=train_budget)
    prepare_demo_lake(settings.lake)
    Lake(settings.lake).check_writable()
    config = MockConfig(seed=seed, **mock_fields)
    dates = [config.end - dt.timedelta(days=n) for n in range(days - 1, -1, -1)]
    result = DemoResult(lake=settings.lake, days=dates)
    # Train once enough history exists, and again at the end so a challenger meets the champion.
    train_on = {dates[len(dates) // 2], dates[-1]}
    echo(f"Demo lake: {settings.lake}  ({days} simulated days, "
         f"{dates[0]} .. {dates[-1]}, mock seed {seed})")
    echo(f"Training budget: {train_budget:g} s of search per training (the demo's own; "
         f"lakehouse train uses {Settings().train_budget:g} s, or --budget)")
    with running_mock_api(config, admin=True) as api:
        live = settings.replace(api_url=api.url)
        ctx = RunContext.open(live, alerts=SettingsSinks(live))
        echo(f"Bundled MooVitamix API on {api.url}")
        for day in dates:
            api.set_as_of(day)
            today = daily(ctx, date=day, retrain=day in train_on, report=day == dates[-1])
            result.failed_steps += [f"{day} {s.name}: {s.detail}" for s in today.failed]
            echo(f"  {day}  " + "; ".join(
                f"{s.name} {s.detail}" if s.status == SUCCESS else f"{s.name} FAILED: {s.detail}"
                for s in today.steps if s.status != SKIPPED and s.name in _SHOWN))
            result.report = today.report or result.report
    registry = Registry(settings.models_dir)
    searched = [i for i in registry.versions() if i.candidates]
    if searched:
        result.candidates = searched[-1].candidates
    result.champion = registry.alias(names.CHAMPION)
    if result.champion:
        metrics = registry.get(result.champion).metrics or {}
        # A champion registered before any holdout existed has no metrics to show.
        model = (metrics.get(names.MODEL_METRICS) or {}).get(names.PRECISION_AT_10)
        baseline = (metrics.get(names.BASELINE_METRICS) or {}).get(names.PRECISION_AT_10)
        if model is not None and baseline is not None:
            result.precision = (model, baseline)
    result.seconds = time.perf_counter() - t0
    return result
