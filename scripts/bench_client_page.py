"""CPU per page of the ingest's HTTP client against urllib3's own pool, same process.

The bundled mock API (spawned, one uvicorn worker) serves small pages; one
thread reads the same pages through

1. ``urllib3``: a bare ``urllib3.PoolManager`` GET, body read, ``orjson``
   parse (what the transport costs with nothing on top);
2. ``ApiClient``: ``lakehouse.source.client.ApiClient.get_page`` (its urllib3
   pool configured from the environment, retries, the request deadline, the
   envelope checks; before issue 22's client4 branch, a requests session).

Each is measured ``--repeat`` times over ``--pages`` pages, alternating; the
best CPU time per page is kept (a steadier figure than wall time on a shared
machine).

Usage:
    .venv/bin/python scripts/bench_client_page.py [--pages 500] [--size 10]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_ingest import serve  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=500)
    parser.add_argument("--size", type=int, default=10, help="records per page")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    server = ctx.Process(target=serve, args=(20 * args.size, ports), daemon=True)
    server.start()
    port, _ = ports.get(timeout=600)
    import orjson
    import urllib3

    from lakehouse.source.client import ApiClient

    base = f"http://127.0.0.1:{port}"
    pool = urllib3.PoolManager()

    def bare(page: int) -> int:
        response = pool.request("GET", f"{base}/users?page={page}&size={args.size}")
        return len(orjson.loads(response.data)["items"])

    try:
        with ApiClient(base) as client:
            readers = {"urllib3": bare,
                       "ApiClient": lambda page: len(client.get_page("/users", page,
                                                                     args.size).items)}
            best = dict.fromkeys(readers, float("inf"))
            for _ in range(args.repeat):
                for name, read in readers.items():
                    for page in range(1, 21):  # warm: connections open, code paths hot
                        read(page)
                    start = time.process_time()
                    for i in range(args.pages):
                        assert read(1 + i % 20) == args.size
                    best[name] = min(best[name], (time.process_time() - start) / args.pages)
    finally:
        server.terminate()
        server.join()
    for name, seconds in best.items():
        print(f"{name:<10} {seconds * 1e3:.3f} ms CPU/page")
    print(f"ApiClient / urllib3: {best['ApiClient'] / best['urllib3']:.2f}x")


if __name__ == "__main__":
    main()
