"""The source API: HTTP client, pagination and endpoint specs.

The client only yields pages; :mod:`lakehouse.ingest` turns them into raw
tables.
"""

from lakehouse.source.client import ApiClient, Page, check_base_url
from lakehouse.source.endpoints import ENDPOINTS, EndpointSpec, endpoint
from lakehouse.source.paginator import iter_pages

__all__ = ["ApiClient", "ENDPOINTS", "EndpointSpec", "Page", "check_base_url", "endpoint",
           "iter_pages"]
