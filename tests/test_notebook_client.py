"""The notebook tests' kernel client: a lost zmq wake-up costs a slice, not the timeout.

No kernel here: a real zmq socket pair and a jupyter_client session, the reply
signed as a kernel signs it. The wake-up is lost the way pyzmq loses one: the
message has arrived and something else read the socket's events (here a
``zmq_poll`` on a second handle of the same socket), which consumes the edge of
libzmq's edge-triggered file descriptor that the asyncio loop waits on.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path
from queue import Empty

import pytest

# jupyter_client is imported by the tests, not at collection (~0.2 s of every test worker's
# start-up), and one worker runs them all.
pytestmark = pytest.mark.xdist_group("notebook-client")


async def reply_after_a_lost_wakeup(channel_class: type,
                                    timeout: float) -> tuple[str, float, float]:
    """A reply whose wake-up was lost: its type, when it was in the socket and when
    ``get_msg(timeout)`` returned it (seconds after the call)."""
    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    ctx = zmq.asyncio.Context()
    ours = ctx.socket(zmq.DEALER)
    port = ours.bind_to_random_port("tcp://127.0.0.1")
    kernel = zmq.Context.instance().socket(zmq.DEALER)
    kernel.connect(f"tcp://127.0.0.1:{port}")
    session = Session(key=b"secret")
    channel = channel_class(ours, session)
    try:
        session.send(kernel, "status", content={"execution_state": "idle"})
        await channel.get_msg(timeout=10)  # the connection is up
        start = time.monotonic()
        waiting = asyncio.ensure_future(channel.get_msg(timeout=timeout))
        await asyncio.sleep(0.05)  # the poll is registered with the loop
        session.send(kernel, "execute_reply", content={"status": "ok"})
        # Blocks the loop until the reply is in our socket, and reads its events: the
        # descriptor's edge is gone before the loop looks at it.
        assert zmq.Socket.shadow(ours.underlying).poll(10_000, zmq.POLLIN)
        there = time.monotonic() - start
        msg = await waiting
        return msg["msg_type"], there, time.monotonic() - start
    finally:
        kernel.close(linger=0)
        ours.close(linger=0)
        ctx.term()


def test_a_lost_wakeup_holds_the_stock_channel_for_its_whole_timeout():
    from jupyter_client.channels import AsyncZMQSocketChannel

    # What stood a notebook test still for 5 minutes (nbclient's cell timeout was 300 s):
    # the reply was there all along and is read once the timeout runs out.
    # (If pyzmq stops losing it, this fails and the sliced channel may go.)
    kind, there, took = asyncio.run(reply_after_a_lost_wakeup(AsyncZMQSocketChannel, 1.0))
    assert kind == "execute_reply" and there < 0.9 and took >= 0.99, (there, took)


def test_the_sliced_channel_reads_it_within_a_slice():
    from tests.notebook_client import SlicedPollChannel

    kind, there, took = asyncio.run(reply_after_a_lost_wakeup(SlicedPollChannel, 60))
    assert kind == "execute_reply" and took - there < 5, (there, took)


def test_the_sliced_channel_still_times_out():
    import zmq
    import zmq.asyncio
    from jupyter_client.session import Session

    from tests.notebook_client import SlicedPollChannel

    async def wait(timeout: float) -> float:
        ctx = zmq.asyncio.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.bind_to_random_port("tcp://127.0.0.1")
        start = time.monotonic()
        try:
            with pytest.raises(Empty):
                await SlicedPollChannel(sock, Session()).get_msg(timeout=timeout)
            return time.monotonic() - start
        finally:
            sock.close(linger=0)
            ctx.term()

    assert asyncio.run(wait(0)) < 0.5
    assert 0.35 <= asyncio.run(wait(0.4)) < 5


def test_notebooks_run_bounded_on_private_ipc_sockets(tmp_path):
    from tests.notebook_client import (
        CELL_TIMEOUT,
        IpcKernelManager,
        SlicedPollChannel,
        notebook_client,
    )

    client = notebook_client(object(), tmp_path)
    assert client.timeout == CELL_TIMEOUT and client.raise_on_iopub_timeout
    assert client.resources["metadata"]["path"] == str(tmp_path)
    km = IpcKernelManager(kernel_name="python3")
    try:
        assert km.transport == "ipc" and Path(km.ip).parent.is_dir() and len(km.ip) < 90, km.ip
        kc = km.client()
        assert kc.shell_channel_class is SlicedPollChannel
        assert kc.iopub_channel_class is SlicedPollChannel
    finally:
        shutil.rmtree(Path(km.ip).parent)
