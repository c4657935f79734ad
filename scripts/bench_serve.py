#!/usr/bin/env python
"""Benchmark ``lakehouse serve``: latency, throughput and memory at 100,000 users x k=10.

In one run, on the same lake and the same load:

- ``naive pandas lookup`` (the baseline): a FastAPI app that holds the
  partition as a pandas DataFrame and answers with a boolean mask over it,
  the way one would write it first;
- ``lakehouse serve``: the real command (one uvicorn worker), holding the
  partition in sorted arrays.

The lake is a real Delta lake written with ``Lake.write``: the newest
``score_date`` partition of ``consumption.recommendations`` with ``--users``
users x ``--k`` rows (plus an older partition, as a daily lake has), and
``consumption.interactions`` (about 20 tracks per user, Zipf-like) for the
popularity cold start. Each server runs in its own process; the load comes
from other processes (``--clients`` x ``--threads`` keep-alive HTTP/1.1
connections on loopback; ``wrk`` generates the load when it is installed,
``apt-get install wrk``, since the Python client takes much of the CPU the
server needs on a small machine; ``--no-wrk`` forces the Python client), bounded by ``--seconds`` and ``--max-requests``,
in two phases per server: ``max`` (each connection sends its next request
as soon as the answer is in: the throughput) and ``--rate`` (about 1000
req/s offered in total, paced: the latency the app would see at that load;
the Python client counts it from the scheduled send time, wrk from the send).
5 % of requests name users the partition does not know (cold start).
Peak RSS is the server process's ``VmHWM`` (loading included).

Usage:
    .venv/bin/python scripts/bench_serve.py                     # 100,000 users x 10
    .venv/bin/python scripts/bench_serve.py --users 20000 --seconds 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DAY = dt.date(2026, 10, 30)
UNKNOWN_SHARE = 0.05
PACED_CONNECTIONS = 10
TRACKS = 50_000


def make_lake(root: Path, users: int, k: int, seed: int = 0) -> None:
    """A lake with two recommendation partitions and the interactions behind popularity."""
    import pyarrow as pa

    from lakehouse import names
    from lakehouse.lake import Lake
    from lakehouse.recsys.score import RECOMMENDATIONS_ARROW

    rng = np.random.default_rng(seed)
    lake = Lake(root)
    versions = json.dumps({names.CONS_INTERACTIONS: 3, names.CONS_USER_FEATURES: 3})
    for day in (DAY - dt.timedelta(days=1), DAY):
        n = users * k
        lake.write(names.CONS_RECOMMENDATIONS, pa.table({
            names.SCORE_DATE: pa.array([day] * n, pa.date32()),
            names.USER_ID: pa.array(np.repeat(np.arange(1, users + 1), k), pa.int64()),
            "rank": pa.array(np.tile(np.arange(1, k + 1), users), pa.int64()),
            names.TRACK_ID: pa.array(rng.integers(1, TRACKS + 1, n), pa.int64()),
            "score": pa.array(np.sort(rng.random((users, k), np.float32))[:, ::-1].ravel()),
            "model_version": pa.array(["v0003"] * n),
            "input_versions": pa.array([versions] * n),
            # The route that produced each row (every one a warm, batch-scored user here).
            "route": pa.array(["warm:als"] * n),
        }, schema=RECOMMENDATIONS_ARROW), mode="replace_partition",
            partition={names.SCORE_DATE: day.isoformat()}, partition_by=[names.SCORE_DATE])
    pairs = users * 20
    ts = pa.array(np.full(pairs, 1_790_000_000_000_000), pa.timestamp("us", tz="UTC"))
    lake.write(names.CONS_INTERACTIONS, pa.table({
        names.USER_ID: pa.array(np.repeat(np.arange(1, users + 1), 20), pa.int64()),
        names.TRACK_ID: pa.array(np.minimum(rng.zipf(1.3, pairs), TRACKS), pa.int64()),
        "listens": pa.array(np.ones(pairs, np.int64)),
        "first_listen_at": ts, "last_listen_at": ts,
    }), mode="replace")


# --------------------------------------------------------------- the baseline
def baseline_app(lake_root: str):
    """The naive server: one DataFrame, a boolean mask per request."""
    from fastapi import FastAPI, HTTPException

    from lakehouse import names
    from lakehouse.lake import Lake

    lake = Lake(lake_root, create=False)
    frame = lake.sql(f"SELECT * FROM {names.CONS_RECOMMENDATIONS} WHERE {names.SCORE_DATE} = "
                     f"(SELECT max({names.SCORE_DATE}) FROM {names.CONS_RECOMMENDATIONS})").df()
    popular = lake.sql(f"SELECT {names.TRACK_ID}, count(*) AS score FROM "
                       f"{names.CONS_INTERACTIONS} GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 100").df()
    app = FastAPI()

    @app.get("/recommendations/{user_id}")
    def recommendations(user_id: int, k: int = 10) -> dict:
        if k < 1:
            raise HTTPException(422, "k must be positive")
        rows = frame[frame[names.USER_ID] == user_id].sort_values("rank").head(k)
        if rows.empty:
            items = [{"rank": i + 1, "track_id": int(r.track_id), "score": float(r.score)}
                     for i, r in enumerate(popular.head(k).itertuples())]
            return {"user_id": user_id, "source": "cold_start", "items": items}
        return {"user_id": user_id, "score_date": str(rows[names.SCORE_DATE].iloc[0]),
                "model_version": rows["model_version"].iloc[0], "source": "batch",
                "items": rows[["rank", names.TRACK_ID, "score"]].to_dict("records")}

    return app


def run_baseline(lake_root: str) -> None:
    import uvicorn

    from lakehouse.mockapi.server import bind

    app = baseline_app(lake_root)
    sock = bind("127.0.0.1", 0)
    sock.listen(1024)
    print(f"baseline on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


# ------------------------------------------------------------------- the load
def client(port: int, users: int, k: int, seconds: float, max_requests: int, threads: int,
           rate: float, seed: int, out: mp.Queue) -> None:
    """One load process: ``threads`` keep-alive connections until time or count runs out.

    ``rate`` > 0 paces each connection (requests/s per connection) and measures
    latency from the scheduled send time, so time spent queueing behind a
    slow answer counts; ``rate`` = 0 sends as fast as answers come back.
    """
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    began = time.perf_counter()
    stop_at = began + seconds
    per_thread = max_requests // threads

    def work(t: int) -> None:
        rng = np.random.default_rng(seed * 1000 + t)
        ids = rng.integers(1, users + 1, per_thread)
        unknown = rng.random(per_thread) < UNKNOWN_SHARE
        ids[unknown] += users  # beyond the partition: cold start
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        mine = latencies[t]
        first = time.perf_counter() + rng.random() / rate if rate else 0.0
        for n, uid in enumerate(ids.tolist()):
            due = first + n / rate if rate else time.perf_counter()
            if due > stop_at:
                break
            if rate and (wait := due - time.perf_counter()) > 0:
                time.sleep(wait)
            try:
                conn.request("GET", f"/recommendations/{uid}?k={k}")
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    errors[t] += 1
            except (OSError, http.client.HTTPException):
                errors[t] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            mine.append(time.perf_counter() - due)
        conn.close()

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    out.put((np.concatenate([np.asarray(x) for x in latencies]), sum(errors),
             time.perf_counter() - began))


def load(port: int, args: argparse.Namespace, rate: float) -> dict:
    """Run the load processes against ``port``; ``rate`` is the total offered req/s (0: max)."""
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    per_conn = rate / (args.clients * args.threads)
    procs = [ctx.Process(target=client, args=(port, args.users, args.k, args.seconds,
                                              args.max_requests // args.clients, args.threads,
                                              per_conn, c + 1, out))
             for c in range(args.clients)]
    for p in procs:
        p.start()
    parts = [out.get(timeout=args.seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = np.concatenate([p[0] for p in parts])
    wall = max(p[2] for p in parts)
    return {"requests": len(lat), "errors": sum(p[1] for p in parts), "seconds": wall,
            "rps": len(lat) / wall, "p50_ms": float(np.percentile(lat, 50) * 1e3),
            "p99_ms": float(np.percentile(lat, 99) * 1e3),
            "max_ms": float(lat.max() * 1e3)}


WRK_SCRIPT = """
math.randomseed(%(seed)d)
delay = function()
  return %(delay_ms)d
end
request = function()
  local uid = math.random(1, %(users)d)
  if math.random() < %(unknown)f then uid = uid + %(users)d end
  return wrk.format("GET", "/recommendations/" .. uid .. "?k=%(k)d")
end
"""


def wrk_load(port: int, args: argparse.Namespace, workdir: Path, rate: float) -> dict:
    """A phase with wrk (C: a fraction of the Python client's CPU).

    ``rate`` = 0 saturates with ``clients x threads`` connections. Otherwise
    :data:`PACED_CONNECTIONS` connections each wait ``PACED_CONNECTIONS /
    rate`` seconds, less the ~1 ms an answer takes, between an answer and the
    next request: about ``rate`` requests/s offered (the achieved rate is
    reported). wrk times each request from send to answer.
    """
    script = workdir / "load.lua"
    conns = PACED_CONNECTIONS if rate else args.clients * args.threads
    delay_ms = max(0, round(conns * 1000 / rate) - 1) if rate else 0
    script.write_text(WRK_SCRIPT % {"seed": 1, "users": args.users, "unknown": UNKNOWN_SHARE,
                                    "k": args.k, "delay_ms": delay_ms})
    out = subprocess.run(
        ["wrk", "-t", str(min(args.clients, conns)), "-c", str(conns),
         "-d", f"{args.seconds:g}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout

    def ms(pattern: str) -> float:
        value, unit = re.search(pattern, out, re.M).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    duration = r"([\d.]+)(us|ms|s|m)"

    requests = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    return {"requests": requests,
            "errors": (int(bad.group(1)) if bad else 0)
            + (sum(int(g) for g in errors.groups()) if errors else 0),
            "seconds": args.seconds,
            "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": ms(rf"^\s*50%\s+{duration}"), "p99_ms": ms(rf"^\s*99%\s+{duration}"),
            "max_ms": ms(rf"^\s*Latency\s+\S+\s+\S+\s+{duration}")}


# ---------------------------------------------------------------- the servers
def peak_rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", text).group(1)) / 1024


def start(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, int, float]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=env)
    line = proc.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if not found:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()
    return proc, int(found.group(1)), time.perf_counter() - t0


def get(port: int, path: str) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    body = json.loads(conn.getresponse().read())
    conn.close()
    return body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--clients", type=int, default=2, help="load processes")
    parser.add_argument("--threads", type=int, default=4, help="connections per load process")
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="offered req/s of the paced (latency) phase")
    parser.add_argument("--no-wrk", action="store_true",
                        help="saturate with the Python client even if wrk is installed")
    parser.add_argument("--baseline-server", metavar="LAKE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.baseline_server:
        run_baseline(args.baseline_server)
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        root = Path(tmp) / "lake"
        t0 = time.perf_counter()
        make_lake(root, args.users, args.k)
        print(f"lake: {args.users:,} users x k={args.k} (+1 older partition), "
              f"{args.users * 20:,} interactions, written in {time.perf_counter() - t0:.1f} s; "
              f"load: {args.clients} processes x {args.threads} connections, "
              f"{args.seconds:g} s or {args.max_requests:,} requests, "
              f"{UNKNOWN_SHARE:.0%} unknown users", flush=True)
        servers = {
            "naive pandas lookup (baseline)": [sys.executable, __file__,
                                               "--baseline-server", str(root)],
            "lakehouse serve": [sys.executable, "-m", "lakehouse", "--lake", str(root),
                                "serve", "--port", "0"],
        }
        use_wrk = shutil.which("wrk") is not None and not args.no_wrk
        print(f"load by {'wrk' if use_wrk else 'the Python client'}", flush=True)
        rows, answers = [], {}
        for name, cmd in servers.items():
            proc, port, ready = start(cmd, env)
            try:
                answers[name] = get(port, f"/recommendations/{args.users // 2}?k={args.k}")
                for uid in range(1, 201):
                    get(port, f"/recommendations/{uid}?k={args.k}")  # warm up
                for phase, rate in (("max", 0.0), (f"{args.rate:g}/s", args.rate)):
                    if use_wrk:
                        result = wrk_load(port, args, Path(tmp), rate)
                    else:
                        result = load(port, args, rate)
                    result.update(name=name, phase=phase, ready_s=ready,
                                  rss_mb=peak_rss_mb(proc.pid))
                    rows.append(result)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        same = [(i["track_id"], i["rank"]) for i in answers["lakehouse serve"]["items"]] == \
            [(i["track_id"], i["rank"]) for i in answers["naive pandas lookup (baseline)"]["items"]]
        print(f"{'server':32} {'offered':>8} {'ready s':>7} {'requests':>9} {'errors':>6} "
              f"{'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'peak RSS MB':>11}")
        for r in rows:
            print(f"{r['name']:32} {r['phase']:>8} {r['ready_s']:7.1f} {r['requests']:9,} "
                  f"{r['errors']:6} {r['rps']:7.0f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f} "
                  f"{r['max_ms']:7.1f} {r['rss_mb']:11.0f}")
        base_max, base_paced, ours_max, ours_paced = rows
        print(f"lakehouse serve vs baseline: {ours_max['rps'] / base_max['rps']:.1f}x requests/s "
              f"at saturation; p99 at {args.rate:g} req/s offered "
              f"{base_paced['p99_ms'] / ours_paced['p99_ms']:.1f}x lower; same answer for user "
              f"{args.users // 2}: {same}")
        met = (ours_paced["p99_ms"] < 10 and ours_max["rps"] >= 1000
               and ours_paced["rps"] >= 0.95 * args.rate and ours_max["rss_mb"] < 300
               and ours_max["errors"] + ours_paced["errors"] == 0)
        print(f"targets (p99 < 10 ms at {args.rate:g} req/s offered, >= 1000 req/s at "
              f"saturation, peak RSS < 300 MB, no error): {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
