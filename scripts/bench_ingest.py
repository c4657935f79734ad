"""Benchmark ``lakehouse ingest`` against the server's ceiling and a naive client.

The bundled mock API serves N records per endpoint (users, tracks and listen
records) from a spawned process (one uvicorn worker), so only the client side
is measured here. For each N, in the same run and against the same server:

1. ceiling: a minimal client, ``--workers`` threads on keep-alive
   ``http.client`` connections, that only reads each page's bytes;
2. sequential: one ``requests.Session`` fetching pages one by one and parsing
   the JSON (what a first script would do; nothing is stored);
3. lakehouse: ``lakehouse.ingest.ingest`` into a fresh lake (HTTP, checks,
   Arrow conversion and the Delta commits, one per endpoint, plus meta.runs).

Each measurement runs in its own spawned process, which reports its peak RSS
and its CPU time (a steadier figure than records/s on a shared machine).

Usage:
    .venv/bin/python scripts/bench_ingest.py [--sizes 100000 300000] [--workers 8]
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing as mp
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

ENDPOINTS = ("users", "tracks", "listen_history")
SIZE = 100


def serve(n: int, ports: mp.Queue) -> None:
    """Child: the mock API with ``n`` records per endpoint, one uvicorn worker."""
    import uvicorn

    from lakehouse.mockapi.app import create_app
    from lakehouse.mockapi.data import MockConfig
    from lakehouse.mockapi.server import bind

    app = create_app(MockConfig(seed=5, users=n, tracks=n, listens=n))
    sock = bind("127.0.0.1", 0)
    ports.put((sock.getsockname()[1], app.mock.totals()))
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ceiling(port: int, totals: dict[str, int], workers: int, out: mp.Queue) -> None:
    """Child: read every page's bytes with ``workers`` keep-alive threads."""
    jobs = [(e, p) for e in ENDPOINTS for p in range(1, -(-totals[e] // SIZE) + 1)]
    lock = threading.Lock()
    nbytes = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        got = 0
        while True:
            with lock:
                if not jobs:
                    break
                endpoint, page = jobs.pop()
            conn.request("GET", f"/{endpoint}?page={page}&size={SIZE}")
            response = conn.getresponse()
            got += len(response.read())
            assert response.status == 200, response.status
        with lock:
            nbytes[0] += got

    t0, cpu0 = time.perf_counter(), _cpu_s()
    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put({"seconds": time.perf_counter() - t0, "records": sum(totals.values()),
             "bytes": nbytes[0], "rss_mb": _peak_rss_mb(), "cpu_s": _cpu_s() - cpu0})


def sequential(port: int, totals: dict[str, int], out: mp.Queue) -> None:
    """Child: one requests session, page after page, JSON parsed."""
    import requests

    session = requests.Session()
    records = 0
    t0, cpu0 = time.perf_counter(), _cpu_s()
    for endpoint in ENDPOINTS:
        page = 1
        while True:
            doc = session.get(f"http://127.0.0.1:{port}/{endpoint}",
                              params={"page": page, "size": SIZE}, timeout=60).json()
            records += len(doc["items"])
            if page >= doc["pages"]:
                break
            page += 1
    out.put({"seconds": time.perf_counter() - t0, "records": records,
             "rss_mb": _peak_rss_mb(), "cpu_s": _cpu_s() - cpu0})


def lakehouse_ingest(port: int, lake: str, workers: int, out: mp.Queue) -> None:
    """Child: the real ingest into a fresh lake."""
    from lakehouse.config import Settings
    from lakehouse.ingest import ingest

    settings = Settings.load(env={}, lake=lake, api_url=f"http://127.0.0.1:{port}",
                             workers=workers)
    t0, cpu0 = time.perf_counter(), _cpu_s()
    runs = ingest(settings, date=dt.date(2026, 11, 26))
    seconds, cpu = time.perf_counter() - t0, _cpu_s() - cpu0
    assert all(r.ok for r in runs), [r.error for r in runs]
    out.put({"seconds": seconds, "records": sum(r.records for r in runs),
             "rss_mb": _peak_rss_mb(), "cpu_s": cpu,
             "per_endpoint": {r.target: round(r.duration_s, 2) for r in runs}})


def run_child(ctx: mp.context.SpawnContext, target, *args) -> dict:
    out = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get(timeout=3600)
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000],
                        help="records per endpoint")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    results = []
    for n in args.sizes:
        ports = ctx.Queue()
        t0 = time.perf_counter()
        server = ctx.Process(target=serve, args=(n, ports), daemon=True)
        server.start()
        port, totals = ports.get(timeout=3600)
        print(f"\n== N = {n:,} per endpoint: server ready in {time.perf_counter() - t0:.0f} s, "
              f"totals {totals}")
        lake = Path(tempfile.mkdtemp(prefix="bench-ingest-")) / "lake"
        server_cpu = psutil.Process(server.pid)

        def measured(target, *a, proc=server_cpu) -> dict:
            before = sum(proc.cpu_times()[:2])
            result = run_child(ctx, target, *a)
            result["server_cpu_s"] = sum(proc.cpu_times()[:2]) - before
            return result

        try:
            ceil = measured(ceiling, port, totals, args.workers)
            seq = measured(sequential, port, totals)
            ing = measured(lakehouse_ingest, port, str(lake), args.workers)
        finally:
            server.terminate()
            server.join()
            shutil.rmtree(lake.parent, ignore_errors=True)
        row = {"n": n, "records": ing["records"]}
        for name, r in (("ceiling", ceil), ("sequential", seq), ("ingest", ing)):
            row[name] = {"records_per_s": round(r["records"] / r["seconds"]),
                         "seconds": round(r["seconds"], 2), "peak_rss_mb": round(r["rss_mb"]),
                         "cpu_us_per_record": round(r["cpu_s"] / r["records"] * 1e6, 2),
                         "server_cpu_us_per_record": round(
                             r["server_cpu_s"] / r["records"] * 1e6, 2)}
        row["ingest"]["per_endpoint_s"] = ing["per_endpoint"]
        results.append(row)
        rate = {k: row[k]["records_per_s"] for k in ("ceiling", "sequential", "ingest")}
        print(f"{'client':<12}{'records/s':>12}{'seconds':>10}{'peak RSS MB':>13}"
              f"{'vs ceiling':>12}{'CPU us/record: client':>23}{'server':>8}")
        for name in ("ceiling", "sequential", "ingest"):
            r = row[name]
            print(f"{name:<12}{r['records_per_s']:>12,}{r['seconds']:>10.2f}"
                  f"{r['peak_rss_mb']:>13}{rate[name] / rate['ceiling']:>11.0%}"
                  f"{r['cpu_us_per_record']:>23.2f}{r['server_cpu_us_per_record']:>8.2f}")
        print(f"ingest / sequential: {rate['ingest'] / rate['sequential']:.1f}x; "
              f"per endpoint (s): {ing['per_endpoint']}")
    if len(results) > 1:
        rss = [r["ingest"]["peak_rss_mb"] for r in results]
        print("\ningest peak RSS by N: " + ", ".join(
            f"{r['n']:,}: {m} MB" for r, m in zip(results, rss, strict=True)))
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
