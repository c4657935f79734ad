"""The serving process's helpers, run as short-lived subprocesses.

``lakehouse serve`` keeps only arrays in memory. Two things it needs come
from the analytical stack (pandas, DuckDB, ibis, LightFM: ~150 MB of imports,
and seconds of CPU holding the GIL), so they run here, in a child process,
and come back as one JSON document on stdout:

- ``freshness``: the staleness verdict of
  :func:`lakehouse.monitor.status.status` (the rules of ``lakehouse status``);
- ``cold-start VERSION``: the champion's top tracks for every combination of
  the user features it uses (a few hundred lists), through the recommender's
  public model API. The server then answers cold-start requests by lookup.

Usage (what the server runs)::

    python -m lakehouse.serve.worker --lake LAKE --stale-hours 26 freshness
    python -m lakehouse.serve.worker --lake LAKE cold-start v0003
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from lakehouse.config import Settings
from lakehouse.errors import LakehouseError
from lakehouse.lake import Lake
from lakehouse.serve.coldstart import FEATURES, MAX_K, top_ranked

TIMEOUT_SECONDS = 600.0
NICENESS = 10


def freshness_report(settings: Settings) -> dict[str, Any]:
    """Whether the lake's data is stale, by the rules of ``lakehouse status``."""
    from lakehouse.monitor import alerts
    from lakehouse.monitor.status import status

    st = status(settings, tables=False)
    stale = [p for p in st.errors if p.kind in (alerts.STALE, alerts.MISSED_SCORING)]
    return {"stale": bool(stale), "healthy": st.healthy,
            "problems": [p.message for p in st.errors],
            "checked_at": st.checked_at.isoformat()}


def cold_start_lists(settings: Settings, version: str) -> dict[str, Any]:
    """The champion ``version``'s top :data:`MAX_K` tracks per user-feature combination.

    The ranking is the one batch scoring gives a user without listens: the
    bundle's cold-start model (:attr:`Routed.cold_model`, the route written as
    ``cold:<family>`` in ``consumption.recommendations``) over the catalogue
    of :func:`load_scoring_inputs`, through the families' public
    ``user_vectors``/``item_vectors``. Only a model that scores new users
    from their metadata (``can_score_new_users``: LightFM with user features)
    has lists; for any other cold route (popularity, ALS, LightFM without user
    features) ``features`` is empty and the server serves popularity.

    Returns:
        ``{"version", "route": "cold:<family>", "features": [names used],
        "lists": [{"features": {name: value}, "track_ids": [...], "scores":
        [...]}, ...]}``.
    """
    from lakehouse.recsys.data import load_scoring_inputs
    from lakehouse.recsys.families import LightFMRecommender
    from lakehouse.recsys.registry import Registry

    cold = Registry(settings.models_dir).load_bundle(version).cold_model
    answer: dict[str, Any] = {"version": version, "route": f"cold:{cold.config.name}",
                              "features": [], "lists": []}
    if not (cold.can_score_new_users and isinstance(cold, LightFMRecommender)):
        return answer
    vocab = set(cold.model.user_vocab)
    values = {f: [v for v in allowed if f"{f}={v}" in vocab] for f, allowed in FEATURES.items()}
    used = [f for f, found in values.items() if found]
    if not used:
        return answer
    inputs = load_scoring_inputs(Lake(settings.lake, create=False))
    items = cold.item_vectors(inputs.items, inputs.item_meta)
    combos = [dict(zip(used, c, strict=True)) for c in
              itertools.product(*[[None, *values[f]] for f in used])]
    combos = [c for c in combos if any(v is not None for v in c.values())]
    ids = np.arange(-1, -len(combos) - 1, -1, dtype=np.int64)  # no real user: metadata only
    meta = {int(i): [f"{f}={v}" for f, v in c.items() if v is not None]
            for i, c in zip(ids, combos, strict=True)}
    users = cold.user_vectors(ids, meta)
    for combo, user in zip(combos, users, strict=True):
        ranked = top_ranked(inputs.items, items @ user, MAX_K)
        answer["lists"].append({"features": {f: v for f, v in combo.items() if v is not None},
                                "track_ids": ranked.track_ids.tolist(),
                                "scores": ranked.scores.tolist()})
    answer["features"] = used
    return answer


def call(settings: Settings, *args: str, timeout: float = TIMEOUT_SECONDS) -> dict[str, Any]:
    """Run one helper in a child process and return its JSON answer.

    Raises:
        LakehouseError: The helper failed (its last stderr line says why) or timed out.
    """
    root = str(Path(__file__).resolve().parents[2])  # the same lakehouse code as ours
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "lakehouse.serve.worker", "--lake", str(settings.lake),
           "--stale-hours", repr(settings.stale_hours), *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=env) as child:
        # Background work: on a small machine the answers must not wait for its imports.
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, child.pid, NICENESS)
        try:
            out, err = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise LakehouseError(f"{args[0]} helper took more than {timeout:g} s") from None
    if child.returncode != 0:
        lines = err.strip().splitlines() or [f"exit code {child.returncode}"]
        raise LakehouseError(f"{args[0]} helper failed: {lines[-1]}")
    return json.loads(out)


def main(argv: list[str] | None = None) -> None:
    """Run one helper and print its JSON answer."""
    parser = argparse.ArgumentParser(prog="python -m lakehouse.serve.worker")
    parser.add_argument("--lake", type=Path, required=True)
    parser.add_argument("--stale-hours", type=float)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("freshness")
    cold = sub.add_parser("cold-start")
    cold.add_argument("version")
    args = parser.parse_args(argv)
    settings = Settings.load(lake=args.lake, stale_hours=args.stale_hours)
    if args.command == "freshness":
        answer = freshness_report(settings)
    else:
        answer = cold_start_lists(settings, args.version)
    sys.stdout.write(json.dumps(answer))


if __name__ == "__main__":
    main()
