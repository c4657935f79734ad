"""Page-number pagination: page 1 says how many pages there are; fetch the rest.

Pages 2..N are fetched by a bounded thread pool and yielded in page order,
with at most a few pages per worker in flight, so memory does not grow with
the collection.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from lakehouse.source.client import ApiClient, Page

IN_FLIGHT_PER_WORKER = 3


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
            Pages still in flight are cancelled or awaited before it escapes.
    """
    first = first or client.get_page(path, 1, size)
    yield first
    if first.pages <= 1:
        return
    window: deque[Future[Page]] = deque()
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="page")
    try:
        next_page = 2
        limit = max(1, workers) * IN_FLIGHT_PER_WORKER
        while next_page <= first.pages or window:
            while next_page <= first.pages and len(window) < limit:
                window.append(pool.submit(client.get_page, path, next_page, size))
                next_page += 1
            yield window.popleft().result()
    finally:
        for future in window:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)
