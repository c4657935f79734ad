"""The bundled MooVitamix API: the reference contract over :mod:`lakehouse.mockapi.data`.

Same contract as the reference server (``docs/API_CONTRACT.md``): ``GET /users``,
``/tracks`` and ``/listen_history`` with ``page`` >= 1 and ``size`` 1..100 (default 100), the
``{items, total, page, size, pages}`` envelope, FastAPI's 422 body for bad parameters, 200
with empty ``items`` past the last page, ``/`` redirecting to ``/docs``, and an OpenAPI
document built from the same pydantic models and fastapi-pagination ``Page`` as the
reference. Pages are served from JSON pre-serialized once per as-of date (a page is a slice
of one bytes buffer), which is what makes one worker serve thousands of pages per second.

Faults (``MockConfig.fault_rate``, ``faults``, ``fail_endpoint``) are drawn per request from
a hash of the seed, the as-of date, the endpoint, the query string and how many times that
same request was made before, so a run is reproducible and a retried page can succeed:

- ``429``: ``Too Many Requests`` with a ``Retry-After`` header;
- ``500``: a plain-text ``Internal Server Error``; ``503``: JSON, with ``Retry-After``;
- ``reset``: the connection is dropped without an answer;
- ``slow``: the right answer, after ``slow_seconds`` (make it exceed the client's timeout);
- ``truncated``: a 200 whose JSON body is cut in half (its Content-Length matches the cut);
- ``drift``: a 200 whose items gained a field, lost one, or have ``id``/``user_id`` as string.

``fail_endpoint`` answers every request to that endpoint with a 500.

Admin routes (only with ``admin=True``, outside the contract and hidden from the OpenAPI
document): ``POST /_mock/as-of`` with ``{"as_of": "YYYY-MM-DD"}`` switches the served date
without a restart and answers ``{"as_of": ..., "totals": {endpoint: n}}``; ``GET
/_mock/as-of`` answers the same for the current date.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import threading
from collections import Counter
from typing import Any, List, Optional  # noqa: UP035 - the reference's annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi_pagination import Page
from fastapi_pagination.customization import CustomizedPage, UseParamsFields
from pydantic import BaseModel, Field, create_model

from lakehouse.mockapi.data import Dataset, MockConfig, generate
from lakehouse.names import ENDPOINTS, LISTEN_HISTORY, TRACKS, USERS
from lakehouse.source.endpoints import ENDPOINTS as SPECS
from lakehouse.source.endpoints import EndpointSpec

log = logging.getLogger(__name__)

ADMIN_AS_OF = "/_mock/as-of"


def _item_model(spec: EndpointSpec) -> type[BaseModel]:
    """The reference's item model of an endpoint, from its spec: it makes the OpenAPI
    document, not the responses. Timestamps (``*_at``) are documented as date-times."""
    fields: dict[str, Any] = {}
    for f in spec.fields:
        if f.name.endswith("_at"):
            kind: Any = datetime.datetime
        elif pa.types.is_list(f.type):
            kind = List[int]  # noqa: UP006 - the reference's annotations
        else:
            kind = int if pa.types.is_integer(f.type) else str
        fields[f.name] = (Optional[kind] if f.name in spec.optional else kind,  # noqa: UP045
                          Field())
    name = "".join(part.capitalize() for part in spec.name.split("_")) + "Out"
    return create_model(name, __doc__=spec.description, **fields)


# The reference's item models, from the contract's specs (source/endpoints.py).
TracksOut = _item_model(SPECS[TRACKS])
UsersOut = _item_model(SPECS[USERS])
ListenHistoryOut = _item_model(SPECS[LISTEN_HISTORY])


MockPage = CustomizedPage[Page, UseParamsFields(size=Query(100, ge=1, le=100))]

ITEM_MODELS: dict[str, type[BaseModel]] = {
    TRACKS: TracksOut, USERS: UsersOut, LISTEN_HISTORY: ListenHistoryOut,
}

# The field a ``drift`` fault turns into a string.
_ID_FIELD = {USERS: "id", TRACKS: "id", LISTEN_HISTORY: "user_id"}


class AsOfBody(BaseModel):
    """Body of the admin route that switches the served date."""

    as_of: datetime.date


class SerializedItems:
    """One endpoint's items as JSON, each followed by a comma, in one bytes buffer."""

    def __init__(self, table: pa.Table):
        array = _json_objects(table)
        self.total = len(array)
        self._data = memoryview(array.buffers()[2] or b"")
        self._offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[
            array.offset: array.offset + self.total + 1]
        self._base = int(self._offsets[0]) if self.total else 0

    def page(self, page: int, size: int) -> bytes:
        """The envelope of one page, as the reference's fastapi-pagination renders it."""
        first = (page - 1) * size
        last = min(first + size, self.total)
        items = b""
        if first < self.total:
            # Drop the comma after the page's last item.
            items = self._data[self._offsets[first]:self._offsets[last] - 1].tobytes()
        pages = -(-self.total // size)
        return b'{"items":[%s],"total":%d,"page":%d,"size":%d,"pages":%d}' % (
            items, self.total, page, size, pages)


def _json_objects(table: pa.Table) -> pa.LargeStringArray:
    """Each row as a compact JSON object plus a trailing comma, vectorized with Arrow."""
    parts: list[Any] = []
    for i, field in enumerate(table.schema):
        col = table.column(i).combine_chunks()
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            text = pc.binary_join_element_wise(
                "[", pc.binary_join(col.cast(pa.list_(pa.string())), ","), "]", "")
        elif pa.types.is_integer(field.type):
            text = col.cast(pa.string())
        else:
            escaped = pc.replace_substring(pc.replace_substring(col, "\\", "\\\\"), '"', '\\"')
            text = pc.binary_join_element_wise('"', escaped, '"', "")
        parts.append(("{" if i == 0 else ",") + json.dumps(field.name) + ":")
        parts.append(pc.fill_null(text, "null"))
    parts.append("},")
    if table.num_rows == 0:
        return pa.array([], pa.large_string())
    joined = pc.binary_join_element_wise(*parts, "")
    return joined.cast(pa.large_string())


class MockState:
    """What the app serves now: the data set as of one date, serialized, and fault counters."""

    def __init__(self, config: MockConfig, tables: dict[str, pa.Table] | None = None):
        self._lock = threading.Lock()
        self._attempts: Counter[tuple] = Counter()
        # A data set given as tables (``mock-api --data``) is served as is, whatever the date.
        self._tables = tables
        self._load(config)

    def _load(self, config: MockConfig) -> None:
        dataset = generate(config) if self._tables is None else Dataset(config, self._tables)
        served = {e: SerializedItems(dataset.arrow(e)) for e in ENDPOINTS}
        # Swap both at once so a request never mixes two dates.
        self.config, self.dataset, self.served = config, dataset, served

    def set_as_of(self, day: datetime.date) -> Dataset:
        """Serve the state of ``day`` from now on."""
        with self._lock:
            self._load(self.config.replace(as_of=day))
        log.info("mock API now serves as of %s", day)
        return self.dataset

    def totals(self) -> dict[str, int]:
        """Items per endpoint, as of the served date."""
        return {e: self.served[e].total for e in ENDPOINTS}

    def draw_fault(self, endpoint: str, query: bytes) -> str | None:
        """The fault of this request (None for a normal answer), deterministic by seed."""
        cfg = self.config
        if cfg.fail_endpoint == endpoint:
            return "500"
        if cfg.fault_rate <= 0:
            return None
        key = (cfg.effective_as_of, endpoint, query)
        with self._lock:
            attempt = self._attempts[key]
            self._attempts[key] += 1
        digest = hashlib.blake2b(
            f"{cfg.seed}|{cfg.effective_as_of}|{endpoint}|{query.decode('latin-1')}|{attempt}"
            .encode(), digest_size=16).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= cfg.fault_rate:
            return None
        kinds = cfg.fault_kinds
        return kinds[int.from_bytes(digest[8:], "big") % len(kinds)]


class MockApp(FastAPI):
    """A FastAPI app that injects faults in front of its routes.

    Faults live here rather than in a middleware because dropping a connection needs the
    server's own ``send`` (uvicorn's transport), which middlewares only see wrapped.
    """

    mock: MockState

    async def __call__(self, scope, receive, send) -> None:
        endpoint = scope.get("path", "").strip("/") if scope["type"] == "http" else ""
        if endpoint not in ENDPOINTS:
            await super().__call__(scope, receive, send)
            return
        fault = self.mock.draw_fault(endpoint, scope.get("query_string", b""))
        if fault is None:
            await super().__call__(scope, receive, send)
        elif fault == "slow":
            await asyncio.sleep(self.mock.config.slow_seconds)
            await super().__call__(scope, receive, send)
        elif fault == "reset":
            await _drop_connection(send)
        elif fault in ("truncated", "drift"):
            await self._altered(fault, endpoint, scope, receive, send)
        else:
            await _error(fault, self.mock.config.retry_after)(scope, receive, send)

    async def _altered(self, fault: str, endpoint: str, scope, receive, send) -> None:
        """Run the route, then truncate or drift its body (errors pass through)."""
        start: dict = {}
        chunks: list[bytes] = []

        async def capture(message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await super().__call__(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            seed = hashlib.blake2b(body[:64] + fault.encode(), digest_size=4).digest()
            body = _truncate(body) if fault == "truncated" else _drift(body, endpoint, seed[0])
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _error(kind: str, retry_after: int) -> Response:
    if kind == "429":
        return JSONResponse({"detail": "Too Many Requests"}, status_code=429,
                            headers={"Retry-After": str(retry_after)})
    if kind == "503":
        return JSONResponse({"detail": "Service Unavailable"}, status_code=503,
                            headers={"Retry-After": str(retry_after)})
    return Response("Internal Server Error", status_code=500, media_type="text/plain")


async def _drop_connection(send) -> None:
    """Close the client's connection without an answer."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        # Not under uvicorn (e.g. a test client): fail the request the same visible way.
        raise ConnectionResetError("mock API fault: connection dropped")
    transport.abort()
    # Let uvicorn notice the disconnect, or it logs an app that never answered.
    for _ in range(10):
        if getattr(cycle, "disconnected", True):
            break
        await asyncio.sleep(0)


def _truncate(body: bytes) -> bytes:
    return body[: max(1, len(body) // 2)]


def _drift(body: bytes, endpoint: str, variant: int) -> bytes:
    """The page with a schema change: an extra field, a missing field, or an id as string."""
    doc = json.loads(body)
    kind = variant % 3
    for item in doc["items"]:
        if kind == 0:
            item["source_version"] = 2
        elif kind == 1:
            item.pop("updated_at", None)
        else:
            key = _ID_FIELD[endpoint]
            if item.get(key) is not None:
                item[key] = str(item[key])
    return json.dumps(doc, separators=(",", ":")).encode()


def create_app(config: MockConfig, *, admin: bool = False,
               tables: dict[str, pa.Table] | None = None) -> FastAPI:
    """The mock MooVitamix API serving ``config``'s data set.

    Args:
        config: Data set, as-of date and faults to serve.
        admin: Also serve the admin routes (``POST /_mock/as-of``) outside the contract.
        tables: Serve these items (one table per endpoint, in ``data.SCHEMAS``) instead
            of generating them; ``config`` then only sets the faults.

    Returns:
        A FastAPI app; the data is generated and serialized before this returns.
    """
    app = MockApp(title="MooVitamix", description="A music recommendation system.",
                  version="1.1")
    app.mock = MockState(config, tables)

    @app.get("/", include_in_schema=False)
    async def docs_redirect() -> RedirectResponse:
        return RedirectResponse(url="/docs")

    def route(endpoint: str):
        async def get_page(
            page: int = Query(1, ge=1, description="Page number"),
            size: int = Query(100, ge=1, le=100),
        ) -> Response:
            return Response(app.mock.served[endpoint].page(page, size),
                            media_type="application/json")
        get_page.__name__ = f"get_{endpoint}"
        return get_page

    for endpoint in (TRACKS, USERS, LISTEN_HISTORY):
        app.get(f"/{endpoint}", tags=["HTTP methods"],
                response_model=MockPage[ITEM_MODELS[endpoint]])(route(endpoint))

    if admin:
        def as_of_answer() -> dict:
            return {"as_of": app.mock.config.effective_as_of.isoformat(),
                    "totals": app.mock.totals()}

        @app.post(ADMIN_AS_OF, include_in_schema=False)
        async def set_as_of(body: AsOfBody) -> dict:
            # Blocking on purpose: no request is served while the date switches.
            app.mock.set_as_of(body.as_of)
            return as_of_answer()

        @app.get(ADMIN_AS_OF, include_in_schema=False)
        async def get_as_of() -> dict:
            return as_of_answer()

    return app
