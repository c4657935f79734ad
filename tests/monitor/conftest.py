"""Tiny in-code run logs and a loopback webhook receiver for the monitor tests."""

from __future__ import annotations

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lakehouse import names
from lakehouse.lake import Lake
from lakehouse.runlog import RunRecord, record_run

DAY1 = dt.date(2026, 11, 1)
DAY2 = dt.date(2026, 11, 2)
DAY3 = dt.date(2026, 11, 3)


def run(pipeline: str, target: str, day: dt.date, status: str = names.SUCCESS,
        error: str | None = None, **fields) -> RunRecord:
    """A finished run record; ``fields`` set records, cpu_s, details..."""
    rec = RunRecord(pipeline, target, day)
    rec.finish(status, error)
    for key, value in fields.items():
        setattr(rec, key, value)
    return rec


def healthy_runs(day: dt.date) -> list[RunRecord]:
    """A full successful day: three ingests and two builds."""
    return ([run("ingest", e, day, records=100) for e in names.ENDPOINTS]
            + [run("build", names.STD_USERS, day, records=90, rows_in=100, quarantined=1),
               run("build", names.CONS_DAILY_KPIS, day, records=3)])


def write_runs(settings, *records: RunRecord) -> Lake:
    lake = Lake(settings.lake)
    record_run(lake, *records)
    return lake


class Receiver:
    """A webhook on 127.0.0.1 that keeps every JSON body it is POSTed."""

    def __init__(self):
        self.bodies: list[dict] = []
        self.status = 200
        outer = self

        class Handler(BaseHTTPRequestHandler):
            # Headers and body are two writes: without TCP_NODELAY the body waits for
            # the client's delayed ACK (~40 ms per alert).
            disable_nagle_algorithm = True

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                outer.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(outer.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/T0/B0/s3cr3t-token"
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, per test.
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    rec = Receiver()
    yield rec
    rec.close()
