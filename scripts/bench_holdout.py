#!/usr/bin/env python
"""Which selection holdout picks the family that wins on tomorrow's listens?

On the MovieLens-100k-like temporal set (``tests/movielens_like.py``), the truth is the
issue's protocol: fit on every rating up to the last snapshot's cutoff, score on every
rating after it. Each candidate selection holdout is cut from the ratings up to that
cutoff only, as ``train`` would: the global time cutoff (``data.split``: the latest 20%
of listens), each user's latest 20% (``per_user_latest``) and a random 20% of each
user's items. For each holdout, every family's default configuration (and EASE at a
few lambdas) is fitted on its training part and scored on its holdout users; the table
shows the ranking each holdout gives next to the truth's.

Usage:
    flock /tmp/bench.lock env PYTHONPATH=$PWD .venv/bin/python scripts/bench_holdout.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from lakehouse.config import Settings
    from lakehouse.recsys.data import Inputs, Split, _per_user_split, last_days, split
    from lakehouse.recsys.evaluate import evaluate
    from lakehouse.recsys.families import CANDIDATES, Config, fit
    from lakehouse.recsys.search import scorer, train_data
    from tests import movielens_like

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    r = movielens_like.ratings(seed=args.seed)
    cut = int(np.quantile(r["time"], 0.90))
    users = np.unique(r["user"])
    items = np.unique(r["item"])
    known = r["time"] <= cut

    def inputs_of(mask: np.ndarray) -> Inputs:
        return Inputs(users, items, {}, {}, np.searchsorted(users, r["user"][mask]),
                      np.searchsorted(items, r["item"][mask]),
                      r["time"][mask].astype(np.int64) * 1_000_000,
                      np.zeros(int(mask.sum()), np.int64))

    before = inputs_of(known)
    everything = inputs_of(np.ones(len(r["user"]), bool))
    # The truth: everything up to the cutoff trains, everything after is the holdout.
    t_split = split(everything, float((~known).mean()))
    rng = np.random.default_rng(args.seed)
    per_user = _per_user_split(before, 0.2)
    # Random 20% of each user's distinct items.
    pairs = (per_user.train + per_user.holdout).tocsr()
    pairs.data[:] = 1
    coo = pairs.tocoo()
    held = rng.random(coo.nnz) < 0.2
    rand_hold = sp.csr_matrix((np.ones(held.sum(), np.float32), (coo.row[held], coo.col[held])),
                              shape=pairs.shape)
    counts = sp.csr_matrix((np.ones(len(before.ev_user), np.float32),
                            (before.ev_user, before.ev_item)), shape=pairs.shape)
    counts.sum_duplicates()
    rand_train = (counts - counts.multiply(rand_hold > 0)).tocsr()
    rand_train.eliminate_zeros()
    all_days = last_days(before, np.ones(len(before.ev_user), bool))
    splits = {"truth (after the last snapshot)": (everything, t_split),
              "global time cutoff (train today)": (before, split(before, 0.2)),
              "each user's latest 20%": (before, per_user),
              "random 20% per user": (before, Split("random", None, rand_train, rand_hold,
                                                    all_days.multiply(rand_train > 0).tocsr()))}
    settings = Settings.load(env={})
    configs = [c.default_config(settings) for c in CANDIDATES if c.parent is None
               and c.family != "lightfm"]
    configs += [Config("ease", {"lam": lam, "min_users": 2}) for lam in (50.0, 1000.0)]
    configs += [Config("recent_popularity", {"days": d}) for d in (3.0, 60.0)]
    print("| holdout | users | " + " | ".join(
        f"{c.name}" + (f" {list(c.params.values())[0]:g}" if c.family in
                       ("ease", "recent_popularity") else "") for c in configs) + " | winner |")
    print("| --- " * (len(configs) + 3) + "|")
    for name, (inp, s) in splits.items():
        rows = s.eval_users(True)
        data = train_data(inp, s.train, s.train_last_day)
        values = []
        for config in configs:
            model = fit(config, data, threads=2)
            values.append(evaluate(scorer(model, inp, s.train, rows), s.train[rows],
                                   s.holdout[rows])["precision_at_10"])
        best = int(np.argmax(values))
        print(f"| {name} | {len(rows)} | " + " | ".join(f"{v:.4f}" for v in values)
              + f" | {configs[best].name} |", flush=True)


if __name__ == "__main__":
    main()
