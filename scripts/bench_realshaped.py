#!/usr/bin/env python
"""Replay real-shaped data sets through the contract and the real commands; score the lists.

Two data sets of the shape of the issue's hold-outs (built here, seeded; never the real
ones), each served by ``lakehouse mock-api --data DIR`` on loopback and processed by the
``lakehouse`` commands in subprocesses, exactly as a user would:

- ``listening`` (hetrec-like, ``tests/hetrec_like.py``, 1,892 users x 17,632 artists):
  20% of each user's distinct items are held out at random, the other 80% are served;
  ``ingest``, ``build``, ``train`` (default budget) and ``recommend``, then the served
  lists are scored on the held-out items.
- ``temporal`` (MovieLens-100k-like, ``tests/movielens_like.py``: 943 users x 1,682
  movies, ratings with drifting timestamps): three daily snapshots (all ratings up to
  the 80%, 85% and 90% time quantiles) each served and run through ``lakehouse daily``
  (its default policy: the first day trains, as there is no champion); the last day's
  lists are scored on every rating after its cutoff.

In the same process, on the same served data and the same users, three anchors are
computed independently of the lakehouse code: popularity, EASE (lambda 300, numpy, over
the tracks with 2+ listeners) and implicit ALS tuned on the hold-out itself (a small grid
over factors, regularisation and BM25 weighting: an optimistic anchor). Precision@10,
seen items excluded, full catalogue. Also printed: the champion, the search time against
the budget, and how the search spent its time per family.

Usage (the machine is shared: one run at a time):
    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python scripts/bench_realshaped.py
    ... scripts/bench_realshaped.py --sets temporal --budget 30
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
LAKEHOUSE = str(Path(sys.executable).parent / "lakehouse")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """``lakehouse mock-api --data folder`` on a free loopback port, until closed."""

    def __init__(self, folder: Path):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([LAKEHOUSE, "mock-api", "--data", str(folder), "--port",
                                      str(self.port)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(600):
            try:
                urllib.request.urlopen(f"{self.url}/users?page=1", timeout=1).read()
                return
            except OSError:
                time.sleep(0.2)
        raise SystemExit("the mock API did not start")

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def run(args: list[str], env: dict[str, str]) -> tuple[str, float]:
    t0 = time.perf_counter()
    out = subprocess.run([LAKEHOUSE, *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode not in (0, 1):  # 1: unhealthy status, still a finished run
        raise SystemExit(f"lakehouse {' '.join(args)} failed ({out.returncode}):\n"
                         f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout + out.stderr, seconds


def served_lists(lake: Path, date: dt.date) -> dict[int, list[int]]:
    from lakehouse.lake import Lake

    table = Lake(lake, create=False).to_arrow("consumption.recommendations").to_pandas()
    table = table[table["score_date"] == date].sort_values(["user_id", "rank"])
    return {int(u): g["track_id"].astype(int).tolist() for u, g in table.groupby("user_id")}


def precision(lists: dict[int, list[int]], held: dict[int, set[int]]) -> tuple[float, int]:
    users = [u for u in held if u in lists]
    hits = [len(set(lists[u][:10]) & held[u]) / 10 for u in users]
    return float(np.mean(hits)) if hits else 0.0, len(users)


def anchors(train: sp.csr_matrix, users: np.ndarray, held: dict[int, set[int]],
            user_ids: np.ndarray, item_ids: np.ndarray) -> dict[str, float]:
    """Popularity, EASE (lambda 300) and tuned ALS on the same users, seen items excluded."""
    from implicit.cpu.als import AlternatingLeastSquares
    from implicit.nearest_neighbours import bm25_weight
    from threadpoolctl import threadpool_limits

    rows = np.searchsorted(user_ids, users)
    binary = (train > 0).astype(np.float32).tocsr()
    seen = binary[rows]

    def score(scores: np.ndarray) -> float:
        scores = np.asarray(scores, np.float64)
        scores[seen.nonzero()] = -np.inf
        top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        return float(np.mean([len(set(item_ids[t].tolist()) & held[u]) / 10
                              for u, t in zip(users, top, strict=True)]))

    out = {}
    pop = np.asarray(binary.sum(axis=0)).ravel()
    out["popularity"] = score(np.tile(pop, (len(rows), 1)))
    keep = np.flatnonzero(pop >= 2)
    x = binary[:, keep].toarray()
    gram = x.T @ x
    gram[np.diag_indices_from(gram)] += 300.0
    p = np.linalg.inv(gram)
    b = p / -np.diag(p)
    np.fill_diagonal(b, 0.0)
    ease = np.full((len(rows), train.shape[1]), -1e9)
    ease[:, keep] = seen[:, keep].toarray() @ b
    out["ease_300"] = score(ease)
    best = (0.0, None)
    with threadpool_limits(1, "blas"):
        for factors in (64, 128):
            for reg in (0.01, 0.1):
                for weight in ("bm25", "log"):
                    data = bm25_weight(train, K1=100, B=0.8).tocsr() if weight == "bm25" \
                        else train.copy().tocsr()
                    if weight == "log":
                        data.data = np.log1p(data.data)
                    als = AlternatingLeastSquares(factors=factors, regularization=reg,
                                                  alpha=10.0 if weight == "log" else 1.0,
                                                  iterations=15, random_state=0)
                    als.fit(data.astype(np.float32), show_progress=False)
                    value = score(als.user_factors[rows] @ als.item_factors.T)
                    if value > best[0]:
                        best = (value, f"factors {factors}, reg {reg}, {weight}")
    out["als_tuned"], out["als_tuned_config"] = best
    return out


def champion_report(models: Path) -> dict:
    from lakehouse.recsys.registry import Registry

    reg = Registry(models)
    # The last search (a refresh re-registers the champion's configuration without one).
    searched = [i for i in reg.versions() if not i.selection.get("refreshed_from")]
    info = searched[-1]
    meta = json.loads((info.path / "model.json").read_text())
    return {"chosen": info.params.get("candidate"), "search_seconds": meta["search_seconds"],
            "version": info.version, "champion": reg.alias("champion"),
            "selection": info.selection.get("reason"), "split": info.lineage.get("split"),
            "longest_trial": max((t["seconds"] for t in info.trials), default=0.0),
            "candidates": [{"name": c["name"], "trials": c["trials"],
                            "seconds": c["search_seconds"], "skipped": c.get("skipped"),
                            "eval_seconds": c.get("eval_seconds", 0.0),
                            "p@10": (c.get("test") or {}).get("precision_at_10")}
                           for c in info.candidates]}


def listening(work: Path, budget: float | None, seed: int, order: str = "shuffled") -> dict:
    from tests import hetrec_like

    recs = hetrec_like.records(seed=seed)
    valid = {t["id"] for t in recs["tracks"]}
    if order == "popular-first":
        # An export that lists each user's items by how much they are played (here: by
        # listeners), as a play-count table would: the positions say nothing of time.
        counts: dict[int, int] = {}
        for record in recs["listen_history"]:
            for i in set(record["items"] or []):
                counts[i] = counts.get(i, 0) + 1
        for record in recs["listen_history"]:
            if record["items"]:
                record["items"] = sorted(record["items"], key=lambda i: (-counts[i], i))
    rng = np.random.default_rng(seed)
    held: dict[int, set[int]] = {}
    for record in recs["listen_history"]:
        uid, items = record["user_id"], record["items"]
        if uid is None or not items:
            continue
        distinct = list(dict.fromkeys(i for i in items if i in valid))
        n_hold = int(round(0.2 * len(distinct)))
        if len(distinct) < 2 or n_hold < 1:
            continue
        out = set(rng.choice(distinct, n_hold, replace=False).tolist())
        record["items"] = [i for i in items if i not in out]
        held[uid] = out
    folder = work / "served"
    folder.mkdir(parents=True)
    for endpoint, rows in recs.items():
        with (folder / f"{endpoint}.jsonl").open("w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)
    lake = work / "lake"
    env = {**os.environ, "LAKEHOUSE_LAKE": str(lake), "MLFLOW_DISABLE_TELEMETRY": "true"}
    if budget is not None:
        env["LAKEHOUSE_TRAIN_BUDGET"] = str(budget)
    day = dt.date(2011, 5, 2)
    times = {}
    with Served(folder) as api:
        _, times["ingest"] = run(["ingest", "--api-url", api.url, "--date", str(day)], env)
    _, times["build"] = run(["build", "--date", str(day)], env)
    out, times["train"] = run(["train", "--date", str(day)], env)
    _, times["recommend"] = run(["recommend", "--date", str(day)], env)
    lists = served_lists(lake, day)
    value, n = precision(lists, held)
    # The anchors see exactly what was served (valid tracks only).
    pairs = [(r["user_id"], i) for r in recs["listen_history"] if r["user_id"] is not None
             for i in (r["items"] or []) if i in valid]
    return _finish("listening", lake, lists, value, n, held, pairs, times, out)


def temporal(work: Path, budget: float | None, seed: int) -> dict:
    from tests import movielens_like

    snap = movielens_like.write_snapshots(work / "served", seed=seed)
    lake = work / "lake"
    env = {**os.environ, "LAKEHOUSE_LAKE": str(lake), "MLFLOW_DISABLE_TELEMETRY": "true"}
    if budget is not None:
        env["LAKEHOUSE_TRAIN_BUDGET"] = str(budget)
    times, out = {}, ""
    for d, date in enumerate(snap["dates"], 1):
        with Served(work / "served" / f"day{d}") as api:
            text, times[f"daily {date}"] = run(["daily", "--api-url", api.url, "--date",
                                                str(date), "--no-progress"], env)
            out += text
    lists = served_lists(lake, snap["dates"][-1])
    held: dict[int, set[int]] = {}
    for u, i in zip(*snap["holdout"], strict=True):
        held.setdefault(int(u), set()).add(int(i))
    value, n = precision(lists, held)
    r = snap["ratings"]
    before = r["time"] <= snap["cutoffs"][-1]
    pairs = list(zip(r["user"][before].tolist(), r["item"][before].tolist(), strict=True))
    held = {u: s for u, s in held.items() if u in set(r["user"][before].tolist())}
    return _finish("temporal", lake, lists, value, n, held, pairs, times, out)


def _finish(name: str, lake: Path, lists: dict[int, list[int]], value: float, n: int,
            held: dict[int, set[int]],
            pairs: list[tuple[int, int]], times: dict, out: str) -> dict:
    user_ids = np.unique([u for u, _ in pairs])
    item_ids = np.unique([i for _, i in pairs])
    u = np.searchsorted(user_ids, [p[0] for p in pairs])
    i = np.searchsorted(item_ids, [p[1] for p in pairs])
    train = sp.csr_matrix((np.ones(len(u), np.float32), (u, i)),
                          shape=(len(user_ids), len(item_ids)))
    train.sum_duplicates()
    users = np.array(sorted(x for x in held if x in set(user_ids.tolist())))
    t0 = time.perf_counter()
    base = anchors(train, users, held, user_ids, item_ids)
    same, _ = precision(lists, {u: held[u] for u in users})
    return {"set": name, "lakehouse": same, "lakehouse_all": value, "users": n,
            "anchor_users": len(users),
            "anchors": base, "anchor_seconds": time.perf_counter() - t0, "times": times,
            "champion": champion_report(lake / "models"), "train_output": out}


def report(r: dict, budget: float) -> list[str]:
    a, c = r["anchors"], r["champion"]
    lines = [f"## {r['set']}", "",
             f"On the {r['anchor_users']} users with listens before the hold-out: lakehouse "
             f"served lists p@10 **{r['lakehouse']:.4f}**; popularity {a['popularity']:.4f}, "
             f"EASE (lambda 300) {a['ease_300']:.4f}, ALS tuned on the hold-out "
             f"{a['als_tuned']:.4f} ({a['als_tuned_config']}). On every user with a list "
             f"and a hold-out item ({r['users']}, new users included): "
             f"{r['lakehouse_all']:.4f}.",
             f"last search ({c['version']}; champion {c['champion']}): chose {c['chosen']} "
             f"on a {c['split'].get('method')} split; search {c['search_seconds']:.1f} s for "
             f"a {budget:g} s budget (longest trial {c['longest_trial']:.1f} s: bound "
             f"{budget + c['longest_trial']:.1f} s, "
             f"{'met' if c['search_seconds'] <= budget + c['longest_trial'] else 'NOT met'}; "
             f"{sum(x['eval_seconds'] for x in c['candidates']):.1f} s of the search scoring "
             "the test users); command times "
             + ", ".join(f"{k} {v:.0f} s" for k, v in r["times"].items()), "",
             "| candidate | trials | search s | of it scoring s | p@10 (selection holdout) "
             "| skipped |",
             "| --- | --- | --- | --- | --- | --- |"]
    for cand in c["candidates"]:
        p = f"{cand['p@10']:.4f}" if cand["p@10"] is not None else "-"
        lines.append(f"| {cand['name']} | {cand['trials']} | {cand['seconds']:.1f} | "
                     f"{cand['eval_seconds']:.1f} | {p} | {cand['skipped'] or ''} |")
    return lines + ["", f"selection: {c['selection']}", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="listening,temporal")
    parser.add_argument("--budget", type=float, default=None,
                        help="LAKEHOUSE_TRAIN_BUDGET for the runs (default: the setting's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="keep the work folders here")
    parser.add_argument("--listening-order", choices=("shuffled", "popular-first"),
                        default="shuffled",
                        help="how the listening set's export orders each user's items")
    args = parser.parse_args()
    from lakehouse.config import Settings

    budget = args.budget if args.budget is not None else Settings.load(env={}).train_budget
    for name in args.sets.split(","):
        work = Path(tempfile.mkdtemp(prefix=f"bench-real-{name}-"))
        try:
            result = listening(work, args.budget, args.seed, args.listening_order) \
                if name == "listening" else temporal(work, args.budget, args.seed)
            print("\n".join(report(result, budget)), flush=True)
        finally:
            if args.keep:
                shutil.copytree(work, args.keep / name, dirs_exist_ok=True)
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
