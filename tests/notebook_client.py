"""Run a notebook with nbclient, bounded: a lost message costs a second, a hang fails.

In a CI run one notebook test stood still for ~5 minutes (the kernel idle, the
client waiting), then passed. That is what a lost wake-up of a zmq socket looks
like: pyzmq's asyncio sockets are woken by libzmq's edge-triggered file
descriptor, and when the edge is consumed elsewhere (anything that reads the
socket's events) the reply sits in the socket while ``await socket.poll(t)``
sleeps until ``t`` runs out; only then does it look again, find the reply and
go on (pyzmq issues 1558 and 1203 report the same "returns after the timeout").
nbclient waits for each cell's reply with a single poll of the cell timeout (300
s then), and for its outputs with no timeout at all. tests/test_notebook_client.py
reproduces the stall and checks the remedy.

So the notebook tests run their kernel with:

- channels that poll in slices of ``POLL_SLICE`` seconds up to the caller's
  timeout: each new poll reads the socket's events again, so a lost wake-up
  costs one slice, not the whole timeout;
- a deliberate cell timeout (``CELL_TIMEOUT``, the slowest cell takes ~20 s)
  and an error, not a warning, when a cell's outputs have not all arrived
  ``IOPUB_TIMEOUT`` seconds after its reply: a real hang fails with the cell
  named instead of passing minutes later or losing outputs;
- IPC sockets in a private folder instead of TCP ports: jupyter_client finds free
  ports by binding and releasing them before the kernel binds them, and under
  pytest-xdist another worker's servers (mock APIs, ``lakehouse serve``, Spark)
  can take one in between; a file in a folder of our own cannot be taken.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import typing as t
from pathlib import Path
from queue import Empty

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.channels import AsyncZMQSocketChannel
from jupyter_client.manager import AsyncKernelManager
from traitlets import Type, default

POLL_SLICE = 0.2
CELL_TIMEOUT = 120
IOPUB_TIMEOUT = 30
STARTUP_TIMEOUT = 60


class SlicedPollChannel(AsyncZMQSocketChannel):
    """A kernel channel whose waits re-check the socket every ``POLL_SLICE`` seconds."""

    async def get_msg(self, timeout: float | None = None) -> dict[str, t.Any]:
        """The next message; ``Empty`` once ``timeout`` seconds passed (None: wait on)."""
        assert self.socket is not None
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = POLL_SLICE if deadline is None else \
                min(POLL_SLICE, max(0.0, deadline - time.monotonic()))
            if await self.socket.poll(int(left * 1000)):
                return await self._recv()
            if deadline is not None and time.monotonic() >= deadline:
                raise Empty


class SlicedPollKernelClient(AsyncKernelClient):
    """nbclient's asynchronous kernel client with sliced polls on every channel."""

    shell_channel_class = Type(SlicedPollChannel)
    iopub_channel_class = Type(SlicedPollChannel)
    stdin_channel_class = Type(SlicedPollChannel)
    control_channel_class = Type(SlicedPollChannel)


class IpcKernelManager(AsyncKernelManager):
    """A kernel on IPC sockets in a private folder, talked to with sliced polls."""

    @default("transport")
    def _default_transport(self) -> str:
        return "ipc"

    @default("ip")
    def _default_ip(self) -> str:
        # The socket files' prefix, absolute (the kernel runs in another folder) and short
        # (a Unix socket path holds at most ~107 bytes).
        return str(Path(tempfile.mkdtemp(prefix="nbk-")) / "k")

    @default("client_factory")
    def _default_client_factory(self) -> type:
        return SlicedPollKernelClient

    async def _async_cleanup_resources(self, restart: bool = False) -> None:
        await super()._async_cleanup_resources(restart=restart)
        if not restart:
            shutil.rmtree(Path(self.ip).parent, ignore_errors=True)

    cleanup_resources = _async_cleanup_resources


def notebook_client(nb: t.Any, cwd: Path) -> t.Any:
    """An nbclient ``NotebookClient`` for ``nb``, run in ``cwd``, bounded as above."""
    # Imported here: nbclient loads nbformat and jsonschema, ~1 s of every test worker's
    # start-up, for the few tests that run a notebook.
    from nbclient import NotebookClient

    return NotebookClient(
        nb, kernel_name="python3", kernel_manager_class=IpcKernelManager,
        timeout=CELL_TIMEOUT, startup_timeout=STARTUP_TIMEOUT,
        iopub_timeout=IOPUB_TIMEOUT, raise_on_iopub_timeout=True,
        resources={"metadata": {"path": str(cwd)}})
