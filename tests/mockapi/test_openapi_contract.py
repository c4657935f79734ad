"""The bundled mock API against its own OpenAPI document, property-based (schemathesis).

Hypothesis generates requests from the document (valid and invalid ``page`` and
``size``, odd strings, huge numbers); every answer must match the document
(status code, content type, headers, body schema) and none may be a 5xx while no
fault is configured. Bounded: 20 examples per operation, in-process over ASGI,
a few seconds.

One documented deviation: the reference serves timestamps without a time zone
(API_CONTRACT.md), which JSON Schema's ``date-time`` format (RFC 3339) does not
allow, although its document says ``date-time``. So formats are not validated
by schemathesis; the contract's own timestamp shape is checked here instead,
with the envelope's arithmetic.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from lakehouse.mockapi.app import create_app
from lakehouse.mockapi.data import MockConfig

APP = create_app(MockConfig(seed=3, users=60, tracks=80, listens=200))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
schema.config.checks.response_schema_conformance.validate_formats = False
# ISO 8601 without a time zone, microseconds optional (the contract's timestamps).
NAIVE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?$")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_answer_matches_the_document_and_none_is_a_server_error(case):
    response = case.call()
    assert response.status_code < 500, (case.path, case.query, response.text[:200])
    case.validate_response(response)
    if response.status_code == 200 and case.path != "/":
        body = json.loads(response.text)
        assert body["pages"] == math.ceil(body["total"] / body["size"])
        assert len(body["items"]) <= body["size"]
        for item in body["items"]:
            for key in ("created_at", "updated_at"):
                assert NAIVE_TIMESTAMP.match(item[key]), (key, item[key])


def test_the_document_describes_the_three_endpoints():
    paths = set(schema.raw_schema["paths"])
    assert {"/users", "/tracks", "/listen_history"} <= paths
    assert not any(p.startswith("/_mock") for p in paths)
