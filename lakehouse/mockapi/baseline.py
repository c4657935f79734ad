"""The reference server's way of serving, for comparison: fastapi-pagination over dicts.

Same models, same ``Page``, same routes as :mod:`lakehouse.mockapi.app`, but every request
validates and serializes its items with pydantic, as the reference does. Tests use it to
prove the fast app answers the same bytes; ``scripts/bench_mockapi.py`` uses it as the
baseline of pages per second. Not used for serving.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi_pagination import add_pagination, paginate

from lakehouse.mockapi.app import ListenHistoryOut, MockPage, TracksOut, UsersOut
from lakehouse.mockapi.data import MockConfig, generate
from lakehouse.names import LISTEN_HISTORY, TRACKS, USERS


def naive_app(config: MockConfig) -> FastAPI:
    """The reference-style app over ``config``'s data set (no faults, no admin route)."""
    dataset = generate(config)
    tracks = dataset.records(TRACKS)
    users = dataset.records(USERS)
    listen_history = dataset.records(LISTEN_HISTORY)

    app = FastAPI(title="MooVitamix", description="A music recommendation system.",
                  version="1.1")

    @app.get("/", include_in_schema=False)
    async def docs_redirect() -> RedirectResponse:
        return RedirectResponse(url="/docs")

    @app.get("/tracks", tags=["HTTP methods"])
    async def get_tracks() -> MockPage[TracksOut]:
        return paginate(tracks)

    @app.get("/users", tags=["HTTP methods"])
    async def get_users() -> MockPage[UsersOut]:
        return paginate(users)

    @app.get("/listen_history", tags=["HTTP methods"])
    async def get_listen_history() -> MockPage[ListenHistoryOut]:
        return paginate(listen_history)

    add_pagination(app)
    return app
