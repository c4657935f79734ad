#!/usr/bin/env python
"""Each recommender family's fit time and peak memory at a given size.

A seeded listening matrix (Zipf track popularity, log-normal listens per user, listen
days spread over 60 days) is built in a fresh child process per family; the child
records its resident memory before the fit and its peak (``ru_maxrss``) after, and the
fit's wall-clock time. A family that skips itself (EASE beyond its memory bound) prints
its reason instead. Sizes: ``demo`` (the demo's mock: 2,000 users x 3,000 tracks x
20,000 listens) and ``large`` (100,000 users x 50,000 tracks x 2,000,000 listens).

Usage (the machine is shared: one run at a time):
    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python scripts/bench_families.py
    ... scripts/bench_families.py --sizes large --families item_knn,als
    ... scripts/bench_families.py --families item_knn+trend,als+trend,ease+trend
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SIZES = {"demo": (2_000, 3_000, 20_000), "large": (100_000, 50_000, 2_000_000)}
FAMILIES = ("popularity", "recent_popularity", "item_knn", "ease", "als", "lightfm")


def data(users: int, tracks: int, listens: int, seed: int = 0):
    from lakehouse.recsys.base import TrainData

    rng = np.random.default_rng(seed)
    pop = 1.0 / np.arange(1, tracks + 1) ** 0.9
    pop /= pop.sum()
    per_user = rng.lognormal(0, 1, users)
    u = rng.choice(users, listens, p=per_user / per_user.sum())
    i = rng.choice(tracks, listens, p=pop)
    counts = sp.csr_matrix((np.ones(listens, np.float32), (u, i)), shape=(users, tracks))
    counts.sum_duplicates()
    # Each pair's last listen: a day within the 60 days.
    last = counts.copy()
    last.data = 20_000 + rng.uniform(0, 60, counts.nnz)
    return TrainData(np.arange(users), np.arange(tracks), {}, {}, counts, last)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def child(size: str, family: str, threads: int) -> None:
    from lakehouse.config import Settings
    from lakehouse.recsys.families import FAMILIES as CLASSES
    from lakehouse.recsys.families import fit
    from lakehouse.recsys.popularity import TREND_FIRST

    train = data(*SIZES[size])
    # "ease+trend": the family's default blended with recent popularity (its first trial).
    family, _, variant = family.partition("+")
    cls = CLASSES[family]
    reason = cls.skip_reason(train)
    if reason:
        print(json.dumps({"family": family, "skipped": reason}))
        return
    config = cls.default_config(Settings.load(env={}))
    if family == "lightfm" and size == "large":
        config = config.with_params(epochs=5)  # 30 epochs would take minutes: scale it
    if variant == "trend":
        config = config.with_params(**TREND_FIRST)
        family = config.name
    before = rss_kib()
    t0 = time.perf_counter()
    fit(config, train, threads=threads)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"family": family, "seconds": seconds, "peak_mib": peak / 1024,
                      "before_mib": before / 1024, "epochs": config.params.get("epochs"),
                      "nnz": int(train.matrix.nnz)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="demo,large")
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child, args.threads)
        return
    print("| size | family | fit s | peak RSS MiB | RSS before fit MiB | note |")
    print("| --- | --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        for family in args.families.split(","):
            out = subprocess.run([sys.executable, __file__, "--child", size, family,
                                  "--threads", str(args.threads)], capture_output=True,
                                 text=True)
            lines = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
            if out.returncode or not lines:
                print(f"| {size} | {family} | failed | | | {out.stderr.strip()[-200:]} |")
                continue
            r = json.loads(lines[-1])
            if "skipped" in r:
                print(f"| {size} | {family} | - | - | - | skipped: {r['skipped']} |")
                continue
            note = f"{r['epochs']} epochs" if r.get("epochs") else ""
            print(f"| {size} | {family} | {r['seconds']:.2f} | {r['peak_mib']:.0f} | "
                  f"{r['before_mib']:.0f} | {note} |", flush=True)


if __name__ == "__main__":
    main()
