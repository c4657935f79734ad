"""The test run's own plumbing: grouped tests really run on one xdist worker.

``make test`` and ``make test-fast`` run ``--dist loadgroup``: tests that use a
module-scoped fixture (and the Spark ones) carry an ``xdist_group`` mark so one
worker builds that fixture once. If xdist stops honouring the marks (pytest 9.2
with pytest-xdist 3.8 did, silently), every worker builds every module fixture
again and the suite costs tens of seconds more CPU with nothing failing.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def module_thing() -> int:
    return 1


def test_a_module_fixture_test_carries_its_group_into_xdist(request, module_thing):
    if not os.environ.get("PYTEST_XDIST_WORKER") or not request.config.getvalue("loadgroup"):
        pytest.skip("only meaningful under pytest-xdist with --dist loadgroup")
    # xdist's scheduler reads the group from the node id's "@group" suffix.
    assert request.node.nodeid.endswith("@tests/test_xdist_groups.py"), request.node.nodeid


def test_the_group_mark_is_added_for_module_fixtures(request, module_thing):
    marks = [m.args for m in request.node.iter_markers("xdist_group")]
    assert marks == [("tests/test_xdist_groups.py",)]
