"""Benchmark the bundled mock API: generation time, then pages/s against a naive baseline.

Generation (universe, as-of snapshot, JSON pre-serialization) is timed in this process.
Serving is timed with one uvicorn worker in a spawned process per app and keep-alive HTTP
clients in threads of this process, fetching ``size=100`` pages of ``/listen_history``
(the biggest endpoint) across the whole collection for a fixed time. The baseline is the
reference's way of serving (:func:`lakehouse.mockapi.baseline.naive_app`: fastapi-pagination
``paginate`` over dicts, pydantic on every request) over the same data, in the same run.

Usage:
    .venv/bin/python scripts/bench_mockapi.py [--users 100000 --tracks 50000
        --listens 1000000 --seconds 10 --clients 4]
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import resource
import statistics
import threading
import time

from lakehouse.mockapi import data
from lakehouse.mockapi.app import SerializedItems
from lakehouse.mockapi.data import MockConfig
from lakehouse.names import ENDPOINTS, LISTEN_HISTORY


def serve(kind: str, config: MockConfig, ports: mp.Queue) -> None:
    """Child process: build the app, then serve it with one uvicorn worker."""
    import uvicorn

    from lakehouse.mockapi.app import create_app
    from lakehouse.mockapi.baseline import naive_app
    from lakehouse.mockapi.server import bind

    app = create_app(config) if kind == "mock" else naive_app(config)
    sock = bind("127.0.0.1", 0)
    ports.put(sock.getsockname()[1])
    uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False,
                                  lifespan="off")).run(sockets=[sock])


def hammer(port: int, pages: int, seconds: float, clients: int) -> dict:
    """Fetch pages from ``clients`` keep-alive connections for ``seconds``."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    sizes = [0] * clients
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        page = 1 + i * (pages // clients)
        while time.monotonic() < stop:
            started = time.perf_counter()
            conn.request("GET", f"/{LISTEN_HISTORY}?page={page}&size=100")
            response = conn.getresponse()
            body = response.read()
            assert response.status == 200, response.status
            latencies[i].append(time.perf_counter() - started)
            sizes[i] += len(body)
            page = page % pages + 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lat in latencies for x in lat)
    return {"pages": len(flat), "pages_s": len(flat) / elapsed,
            "mb_s": sum(sizes) / elapsed / 1e6,
            "p50_ms": 1000 * statistics.median(flat),
            "p99_ms": 1000 * flat[int(0.99 * (len(flat) - 1))]}


def measure_serving(kind: str, config: MockConfig, pages: int, seconds: float,
                    clients: int) -> dict:
    ctx = mp.get_context("spawn")
    ports: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=serve, args=(kind, config, ports), daemon=True)
    proc.start()
    try:
        port = ports.get(timeout=600)
        time.sleep(0.5)
        hammer(port, pages, 1.0, clients)  # warm-up
        return hammer(port, pages, seconds, clients)
    finally:
        proc.terminate()
        proc.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--tracks", type=int, default=50_000)
    parser.add_argument("--listens", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    config = MockConfig(users=args.users, tracks=args.tracks, listens=args.listens)

    print(f"size: {args.users:,} users, {args.tracks:,} tracks, {args.listens:,} listen "
          f"records (seed {config.seed}, as of {config.effective_as_of})")
    started = time.perf_counter()
    universe = data.universe(config)
    t_universe = time.perf_counter() - started
    dataset = universe.snapshot(config)
    t_snapshot = time.perf_counter() - started - t_universe
    served = {e: SerializedItems(dataset.arrow(e)) for e in ENDPOINTS}
    total = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"generation: universe {t_universe:.1f} s + as-of snapshot {t_snapshot:.1f} s + "
          f"JSON pre-serialization {total - t_universe - t_snapshot:.1f} s = {total:.1f} s "
          f"(target < 30 s); peak RSS {rss:,.0f} MB")
    pages = -(-served[LISTEN_HISTORY].total // 100)
    del universe, dataset, served
    data._universe.cache_clear()

    print(f"serving /{LISTEN_HISTORY}?size=100 ({pages:,} pages), one uvicorn worker, "
          f"{args.clients} keep-alive clients, {args.seconds:g} s each:")
    results = {}
    for kind, label in (("mock", "mock API (pre-serialized)"),
                        ("naive", "baseline (fastapi-pagination paginate over dicts)")):
        results[kind] = r = measure_serving(kind, config, pages, args.seconds, args.clients)
        print(f"  {label:<52} {r['pages_s']:8.0f} pages/s  {r['mb_s']:6.1f} MB/s  "
              f"p50 {r['p50_ms']:5.1f} ms  p99 {r['p99_ms']:6.1f} ms")
    print(f"speed-up: {results['mock']['pages_s'] / results['naive']['pages_s']:.1f}x "
          f"(target >= 400 pages/s)")


if __name__ == "__main__":
    main()
