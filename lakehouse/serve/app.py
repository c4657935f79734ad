"""The HTTP API of ``lakehouse serve``: recommendations per user, and health.

Routes (all described in ``/openapi.json``; Swagger UI at ``/docs``):

- ``GET /recommendations/{user_id}?k=&date=&favorite_genre=&gender=``
- ``GET /health``: 200 while something is served, 503 when nothing is.

Answers are encoded with orjson straight from the service's dicts; the
pydantic models below describe them in the OpenAPI document but do not
re-validate every answer, which would cost more than the lookup itself.

The request the app makes all day, ``GET /recommendations/<id>`` with at most
``?k=<n>``, is answered by :class:`FastPath` before FastAPI's routing and
parameter validation (which cost several times the lookup). It accepts only
requests it can answer exactly as FastAPI would; anything else (another
parameter, a value out of range, a missing token, an error) goes to the
FastAPI app, which validates and answers as documented.
"""

from __future__ import annotations

import datetime as dt
import hmac
from typing import Annotated, Any, Literal

import orjson
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict

from lakehouse import __version__, names
from lakehouse.errors import KLimitError, NothingToServeError, NotServedError
from lakehouse.serve.coldstart import MAX_K
from lakehouse.serve.service import Service

# The largest id that fits the int64 columns the ids are stored in.
MAX_ID = 2**63 - 1

Genre = Literal[names.GENRES]  # type: ignore[valid-type]
Gender = Literal[names.GENDERS]  # type: ignore[valid-type]


class Item(BaseModel):
    """One recommended track. Extra columns of the table, if any, are passed through."""

    model_config = ConfigDict(extra="allow")
    rank: int
    track_id: int
    score: float


class Recommendations(BaseModel):
    """One user's recommendations."""

    user_id: int
    score_date: dt.date
    model_version: str | None
    source: Literal["batch", "cold_start"]
    cold_start_route: Literal["champion", "popularity"] | None
    items: list[Item]


class Health(BaseModel):
    """What is served, and whether the lake's data is stale."""

    status: Literal["ok", "stale", "unavailable"]
    champion: str | None
    score_date: dt.date | None
    table_version: int | None
    users: int
    k: int
    stale: bool | None
    problems: list[str]
    checked_at: dt.datetime | None
    cold_start_routes: list[str]
    cold_start_features: list[str]
    loaded_at: dt.datetime | None
    reload_errors: dict[str, str]


class Detail(BaseModel):
    """An error that is not about the request's syntax."""

    detail: str


def _json(body: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


_BEARER = HTTPBearer(auto_error=False, description="The value of LAKEHOUSE_SERVE_TOKEN.")


class _RequireToken:
    """A dependency refusing requests without ``Authorization: Bearer <token>``."""

    def __init__(self, token: str):
        self._token = token.encode()

    async def __call__(self, creds: Annotated[HTTPAuthorizationCredentials | None,
                                              Depends(_BEARER)]) -> None:
        given = creds.credentials.encode() if creds else b""
        if not hmac.compare_digest(given, self._token):
            raise HTTPException(401, "missing or wrong bearer token",
                                headers={"WWW-Authenticate": "Bearer"})


class FastPath:
    """An ASGI app answering well-formed ``GET /recommendations/<id>[?k=<n>]`` itself.

    Args:
        app: The FastAPI app, for every other request.
        service: Where answers come from.
        token: The bearer token requests must carry, if any.
    """

    PREFIX = "/recommendations/"

    def __init__(self, app: FastAPI, service: Service, token: str | None = None):
        self.app = app
        self.service = service
        self._auth = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        body = self._answer(scope) if scope["type"] == "http" else None
        if body is None:
            await self.app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    def _answer(self, scope: dict) -> bytes | None:
        path = scope["path"]
        if scope["method"] != "GET" or not path.startswith(self.PREFIX):
            return None
        user = _positive(path[len(self.PREFIX):], MAX_ID)
        query = scope["query_string"]
        k = None
        if query:
            if not query.startswith(b"k="):
                return None
            k = _positive(query[2:].decode("latin-1"), MAX_K)
            if k is None:
                return None
        if user is None or (self._auth and not self._authorized(scope)):
            return None
        try:
            return orjson.dumps(self.service.recommend(user, k))
        except Exception:  # noqa: BLE001 - FastAPI answers it again, with the right error
            return None

    def _authorized(self, scope: dict) -> bool:
        for name, value in scope["headers"]:
            if name == b"authorization":
                return hmac.compare_digest(value, self._auth)
        return False


def _positive(text: str, limit: int) -> int | None:
    """``text`` as an int in 1..limit if it is plain ASCII digits, else None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        return None
    value = int(text)
    return value if 1 <= value <= limit else None


def create_asgi(service: Service, token: str | None = None) -> FastPath:
    """What ``lakehouse serve`` runs: :class:`FastPath` in front of :func:`create_app`."""
    return FastPath(create_app(service, token), service, token)


def create_app(service: Service, token: str | None = None) -> FastAPI:
    """The FastAPI app answering from ``service``.

    Args:
        service: Where answers come from (started and stopped by the caller).
        token: When set, every route needs ``Authorization: Bearer <token>``,
            ``/openapi.json`` included, and ``/docs`` and ``/redoc`` are not served.
    """
    # With a token, every route needs it, the OpenAPI document too (it maps the service
    # for whoever can reach the port); /docs and /redoc are not served then, as a
    # browser cannot send the header their page needs to load that document.
    guard = [Depends(_RequireToken(token))] if token else []
    app = FastAPI(title="lakehouse recommendations", version=__version__,
                  description="The champion model's recommendations per user, from "
                              "consumption.recommendations, with a cold start for new users.",
                  dependencies=guard, openapi_url=None if token else "/openapi.json",
                  docs_url=None if token else "/docs", redoc_url=None if token else "/redoc")
    app.state.service = service
    if token:
        @app.get("/openapi.json", include_in_schema=False)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    @app.exception_handler(NothingToServeError)
    async def nothing(_request: Request, exc: NothingToServeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(NotServedError)
    async def not_served(_request: Request, exc: NotServedError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/openapi.json" if token else "/docs")

    @app.get("/recommendations/{user_id}", response_model=Recommendations,
             responses={404: {"model": Detail, "description": "No such score date"},
                        503: {"model": Detail, "description": "Nothing to serve yet"}},
             summary="A user's top tracks")
    async def recommendations(
        user_id: Annotated[int, Path(ge=1, le=MAX_ID, description="The user's id.")],
        k: Annotated[int | None, Query(ge=1, le=MAX_K, description=(
            "How many tracks; at most the stored k (default: all stored)."))] = None,
        date: Annotated[dt.date | None, Query(description=(
            "The score_date partition (default: the newest)."))] = None,
        favorite_genre: Annotated[Genre | None, Query(description=(
            "Cold start only: the user's favourite genre, if the champion uses it."))] = None,
        gender: Annotated[Gender | None, Query(description=(
            "Cold start only: the user's gender, if the champion uses it."))] = None,
    ) -> Response:
        """The user's stored top-k (``source: batch``), or for a user the served
        partition does not know, k tracks from the champion's cold-start route
        (when given features it uses) or from popularity (``source: cold_start``)."""
        features = {"favorite_genre": favorite_genre, "gender": gender}
        try:
            if service.needs_io(date):
                answer = await run_in_threadpool(service.recommend, user_id, k, date, features)
            else:
                answer = service.recommend(user_id, k, date, features)
        except KLimitError as exc:
            raise RequestValidationError([{
                "type": "less_than_equal", "loc": ("query", "k"),
                "msg": f"Input should be less than or equal to {exc.limit}",
                "input": str(k), "ctx": {"le": exc.limit}}]) from None
        return _json(answer)

    @app.get("/health", response_model=Health,
             responses={503: {"model": Health, "description": "Nothing to serve"}},
             summary="What is served and whether it is stale")
    async def health() -> Response:
        """The champion, the served score date and table version, and whether the
        lake's data is stale by the rules of ``lakehouse status``."""
        ok, body = service.health()
        return _json(body, 200 if ok else 503)

    return app
