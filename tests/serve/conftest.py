"""A real ``lakehouse serve`` in a subprocess, on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.conftest import copy_lake

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 90.0


@dataclass
class Served:
    """A running ``lakehouse serve``: its base URL and what it printed so far."""

    url: str
    process: subprocess.Popen
    stdout_lines: list[str]
    stderr_lines: list[str]

    def get(self, path: str, **kwargs) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    @property
    def output(self) -> str:
        """Everything it printed, stdout (the access log) and stderr (the log)."""
        return "".join(self.stdout_lines) + "".join(self.stderr_lines)


def _pump(stream, sink: list[str]) -> None:
    for line in stream:
        sink.append(line)


@contextlib.contextmanager
def run_serve(lake: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    """Start ``lakehouse --lake LAKE serve --port 0 ARGS`` and yield once it announces its URL."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LAKEHOUSE_")}
    full_env.update(PYTHONPATH=str(REPO), **(env or {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lakehouse", "--lake", str(lake), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)
    output: list[str] = []
    errors: list[str] = []
    threading.Thread(target=_pump, args=(proc.stdout, output), daemon=True).start()
    threading.Thread(target=_pump, args=(proc.stderr, errors), daemon=True).start()
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        url = None
        while url is None:
            found = re.search(r"http://\S+?:\d+", "".join(output))
            url = found.group(0) if found else None
            if url is None:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"lakehouse serve did not start: {''.join(errors)}")
                time.sleep(0.05)
        yield Served(url=url, process=proc, stdout_lines=output, stderr_lines=errors)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def served_lake(tmp_path_factory, trained_lake):
    """A private copy of the trained lake (tests write new versions into it)."""
    return copy_lake(trained_lake, tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def server(served_lake) -> Iterator[Served]:
    """``lakehouse serve`` on the copy, checking for new versions every 0.2 s."""
    with run_serve(served_lake.lake, "--reload-seconds", "0.2") as served:
        yield served
