"""The source API: HTTP client, pagination, page checks and drift, endpoint specs.

The client only yields pages; :mod:`lakehouse.source.stream` checks them
against the endpoint specs (the contract), confirms drift and batches them;
:mod:`lakehouse.ingest` writes the batches to raw tables.
"""

from lakehouse.source.client import ApiClient, Page, check_base_url
from lakehouse.source.endpoints import ENDPOINTS, EndpointSpec, endpoint
from lakehouse.source.paginator import iter_pages

__all__ = ["ApiClient", "ENDPOINTS", "EndpointSpec", "Page", "check_base_url", "endpoint",
           "iter_pages"]
