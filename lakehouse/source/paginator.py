"""Page-number pagination: page 1 says how many pages there are; fetch the rest.

Pages 2..N are fetched by a bounded thread pool and yielded in page order,
with at most a few pages per worker in flight, so memory does not grow with
the collection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from lakehouse.source.client import ApiClient, Page

IN_FLIGHT_PER_WORKER = 3
T = TypeVar("T")


def fetch_in_order(fetch: Callable[[int], T], numbers: Iterable[int], *,
                   workers: int = 8) -> Iterator[T]:
    """``fetch(n)`` for each page number, run concurrently, yielded in order.

    Raises:
        Exception: The first failing ``fetch`` in page order; pages still in
            flight are cancelled or awaited before it escapes.
    """
    numbers = iter(numbers)
    window: deque[Future[T]] = deque()
    limit = max(1, workers) * IN_FLIGHT_PER_WORKER
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="page")
    try:
        for n in numbers:
            window.append(pool.submit(fetch, n))
            if len(window) >= limit:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def iter_pages(client: ApiClient, path: str, *, size: int, workers: int = 8,
               first: Page | None = None) -> Iterator[Page]:
    """Every page of ``path`` in order, the first one included.

    Args:
        client: The API client.
        path: The endpoint's path, e.g. ``/users``.
        size: Page size (1..100).
        workers: Concurrent requests for pages 2..N.
        first: Page 1 if the caller already read it.

    Raises:
        SourceError: A page could not be read (after the client's retries).
    """
    first = first or client.get_page(path, 1, size)
    yield first
    yield from fetch_in_order(lambda n: client.get_page(path, n, size),
                              range(2, first.pages + 1), workers=workers)
