"""The standardized and consumption zones: pure ibis views and the build that writes them.

- :mod:`lakehouse.zones.base`: what a view is (columns, grain, checks, rules);
- :mod:`lakehouse.zones.standardized`: users, tracks, listen_history, listens;
- :mod:`lakehouse.zones.consumption`: interactions, features, daily KPIs;
- :mod:`lakehouse.zones.build`: :func:`~lakehouse.zones.build.build`, the one writer.
"""

from lakehouse.zones.consumption import VIEWS as CONSUMPTION_VIEWS
from lakehouse.zones.standardized import VIEWS as STANDARDIZED_VIEWS

VIEWS = (*STANDARDIZED_VIEWS, *CONSUMPTION_VIEWS)

__all__ = ["CONSUMPTION_VIEWS", "STANDARDIZED_VIEWS", "VIEWS"]
