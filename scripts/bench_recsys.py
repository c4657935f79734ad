#!/usr/bin/env python
"""Benchmark model selection: every candidate, the champion chosen, search and refit time.

For each mock profile (``realistic``, ``opaque``, ``reference``), in the same
process: start the bundled API on loopback, ``ingest`` and ``build`` its last
day into a fresh lake, then run :func:`lakehouse.recsys.train.train` exactly
as ``lakehouse train`` does (default settings, the given budget). Printed per
profile: every candidate's metrics on the holdout's test users, the search,
refit and total time, the champion chosen, and two baselines measured on the
same users: popularity, and what ``train`` served before model selection
(LightFM with every metadata token weighted like the identity, 64 components,
30 epochs, trained up to the holdout cutoff). Then the issue's targets:

- realistic: champion >= 3x popularity;
- opaque: champion >= the best single candidate (within the bootstrap
  noise) and >= 1.5x popularity;
- the default search on the demo data (realistic, default sizes) < 60 s.

Profile ``hetrec`` (not a mock profile): the hetrec-like synthetic data set of
``tests/hetrec_like.py`` at full size (1,892 users x 17,632 items, one listen
record per user with ~49 items, one timestamp for all), served from tables by
the same HTTP server; prints champion vs popularity precision@10.

Profiles ``listening`` and ``temporal`` (issue 19): the real-shaped replays of
``scripts/bench_realshaped.py`` (through ``mock-api --data`` and the CLI, ``lakehouse daily``
over three snapshot days for the temporal one) against EASE, tuned ALS and popularity
computed in the same process.

Usage:
    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python scripts/bench_recsys.py
    ... scripts/bench_recsys.py --profiles listening,temporal
    ... scripts/bench_recsys.py --profiles opaque --budget 300
    ... scripts/bench_recsys.py --profiles hetrec
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from lakehouse.config import Settings

PRIMARY = "precision_at_10"


def build_lake(profile: str, root: Path, seed: int) -> None:
    """Ingest and build the last day of a mock profile (default sizes) into ``root``."""
    from lakehouse.ingest import ingest
    from lakehouse.mockapi.testing import running_mock_api
    from lakehouse.zones.build import build

    sizes = {"users": 1000, "tracks": 1000} if profile == "reference" else {}
    tables = None
    if profile == "hetrec":
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests import hetrec_like

        tables, profile = hetrec_like.tables(seed=seed), "realistic"
    with running_mock_api(seed=seed, profile=profile, tables=tables, **sizes) as api:
        settings = Settings.load(env={}, lake=root, api_url=api.url, workers=4)
        runs = ingest(settings, date=api.config.end, progress=False)
        failed = [r.error for r in runs if not r.ok]
        if failed:
            raise SystemExit(f"ingest failed: {failed}")
        build(settings, date=api.config.end)


def legacy_baseline(settings: Settings) -> tuple[dict, object]:
    """What ``train`` served before selection, scored on the same test users."""
    from lakehouse.lake import Lake
    from lakehouse.recsys.data import load_inputs, split
    from lakehouse.recsys.evaluate import evaluate, per_user
    from lakehouse.recsys.families import Config, fit
    from lakehouse.recsys.search import holdout_rows, scorer, train_data

    inputs = load_inputs(Lake(settings.lake, create=False))
    data = split(inputs, settings.holdout_share)
    rows = holdout_rows(data, settings.seed).test
    config = Config("lightfm", {"components": 64, "epochs": 30, "learning_rate": 0.05,
                                "loss": "warp", "item_alpha": 1e-6, "user_alpha": 1e-6,
                                "max_sampled": 50, "seed": settings.seed,
                                "features": "both", "meta_weight": None})
    model = fit(config, train_data(inputs, data.train))
    scores = scorer(model, inputs, data.train, rows)
    return (evaluate(scores, data.train[rows], data.holdout[rows]),
            per_user(PRIMARY, scores, data.train[rows], data.holdout[rows]))


def run_profile(profile: str, budget: float | None, seed: int, keep: Path | None) -> dict:
    from lakehouse.recsys.train import train

    root = Path(tempfile.mkdtemp(prefix=f"bench-recsys-{profile}-")) / "lake"
    try:
        t0 = time.perf_counter()
        build_lake(profile, root, seed)
        build_seconds = time.perf_counter() - t0
        settings = Settings.load(env={}, lake=root)
        t1 = time.perf_counter()
        result = train(settings, budget=budget)
        train_seconds = time.perf_counter() - t1
        legacy, _ = legacy_baseline(settings)
        if keep:
            shutil.copytree(root, keep / profile, dirs_exist_ok=True)
        return {"profile": profile, "result": result, "legacy": legacy,
                "build_seconds": build_seconds, "train_seconds": train_seconds}
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)


def report(run: dict) -> list[str]:
    result = run["result"]
    pop = result.metrics["baseline"][PRIMARY]
    chosen = next(c for c in result.candidates if c["name"] == result.chosen)
    lines = [f"## {run['profile']}", "",
             f"ingest+build {run['build_seconds']:.1f} s; train {run['train_seconds']:.1f} s "
             f"(search {result.search_seconds:.1f} s, {len(result.trials)} trials; refit "
             f"{result.refit_seconds:.1f} s); champion **{result.chosen}**, cold start "
             f"{result.cold_route}", "",
             "| candidate | trials | p@10 | r@10 | ndcg@10 | auc | coverage | vs popularity |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]

    def row(name: str, trials, m: dict) -> str:
        cells = [f"{m[k]:.4f}" if m.get(k) is not None else "-"
                 for k in ("precision_at_10", "recall_at_10", "ndcg_at_10", "auc", "coverage")]
        ratio = f"{m[PRIMARY] / pop:.2f}x" if pop and m.get(PRIMARY) is not None else "-"
        return f"| {name} | {trials} | " + " | ".join(cells) + f" | {ratio} |"

    for c in result.candidates:
        mark = " (champion)" if c["name"] == result.chosen else ""
        mark += f" (skipped: {c['skipped']})" if c.get("skipped") else ""
        lines.append(row(c["name"] + mark, c["trials"], c["test"] or {}))
    lines.append(row("before: lightfm+both, tokens weighted like identity", "-",
                     run["legacy"]))
    lines += ["", f"selection: {result.selection}", ""]
    run["ratio"] = chosen["test"][PRIMARY] / pop if pop else float("inf")
    run["best_single"] = max(c["test"][PRIMARY] for c in result.candidates if c["test"])
    run["chosen_value"] = chosen["test"][PRIMARY]
    return lines


def targets(runs: dict[str, dict]) -> list[str]:
    out = ["## targets", ""]
    if "realistic" in runs:
        r = runs["realistic"]
        out.append(f"- realistic: champion {r['ratio']:.2f}x popularity (target >= 3x): "
                   f"{'met' if r['ratio'] >= 3 else 'NOT met'}")
        search = r["result"].search_seconds
        out.append(f"- default search on the demo data: {search:.1f} s (target < 60 s): "
                   f"{'met' if search < 60 else 'NOT met'}")
    if "opaque" in runs:
        r = runs["opaque"]
        gap = r["best_single"] - r["chosen_value"]
        out.append(f"- opaque: champion {r['ratio']:.2f}x popularity (target >= 1.5x): "
                   f"{'met' if r['ratio'] >= 1.5 else 'NOT met'}; champion "
                   f"{r['chosen_value']:.4f} vs best single candidate {r['best_single']:.4f} "
                   f"(gap {gap:.4f}; a gap is the metadata a bootstrap found no better "
                   "than the same model without it)")
    if "hetrec" in runs:
        r = runs["hetrec"]
        pop = r["result"].metrics["baseline"][PRIMARY]
        out.append(f"- hetrec-like: champion {r['result'].chosen} p@10 {r['chosen_value']:.4f} "
                   f"vs popularity {pop:.4f} ({r['ratio']:.2f}x)")
    if "reference" in runs:
        r = runs["reference"]["result"]
        out.append(f"- reference: champion {r.chosen}; {r.selection.split(':')[0]}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", default="realistic,opaque,reference")
    parser.add_argument("--budget", type=float, default=None,
                        help="search seconds (default: the settings' train_budget)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--keep", type=Path, help="copy each lake here afterwards")
    args = parser.parse_args()
    runs = {}
    for profile in args.profiles.split(","):
        if profile in ("listening", "temporal"):
            import subprocess
            import sys

            command = [sys.executable, str(Path(__file__).with_name("bench_realshaped.py")),
                       "--sets", profile]
            if args.budget is not None:
                command += ["--budget", str(args.budget)]
            subprocess.run(command, check=True)
            continue
        runs[profile] = run_profile(profile, args.budget, args.seed, args.keep)
        print("\n".join(report(runs[profile])), flush=True)
    print("\n".join(targets(runs)))


if __name__ == "__main__":
    main()
