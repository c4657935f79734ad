"""The source API: HTTP client, pagination, page checks and drift, endpoint specs.

The client only yields pages; :mod:`lakehouse.source.stream` checks them
against the endpoint specs (the contract), confirms drift and batches them;
:mod:`lakehouse.ingest` writes the batches to raw tables.

The client and the paginator are imported on first use: the build reads only
the endpoint specs, and ``requests`` with what it loads is a tenth of a
second of its start-up.
"""

from importlib import import_module
from typing import Any

from lakehouse.source.endpoints import ENDPOINTS, EndpointSpec, endpoint

_LAZY = {"ApiClient": "lakehouse.source.client", "Page": "lakehouse.source.client",
         "check_base_url": "lakehouse.source.client", "iter_pages": "lakehouse.source.paginator"}

__all__ = ["ApiClient", "ENDPOINTS", "EndpointSpec", "Page", "check_base_url", "endpoint",
           "iter_pages"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
