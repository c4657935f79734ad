"""Advisory file locks, one per lake and purpose, so two runs never interleave."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lakehouse.errors import LakeError, LockedError


@contextmanager
def lake_lock(
    locks_dir: Path, name: str, *, wait: bool = True, timeout: float | None = None
) -> Iterator[Path]:
    """Hold an exclusive lock named ``name`` for the duration of the block.

    The lock is an ``flock`` on ``<locks_dir>/<name>.lock``: the kernel releases
    it when the process dies, so a killed run never leaves a stale lock.

    Args:
        locks_dir: The lake's lock folder.
        name: What is being locked, e.g. ``"ingest"``.
        wait: Block until the lock is free; if False, fail at once.
        timeout: Give up waiting after this many seconds (None: forever).

    Raises:
        LockedError: The lock is held by another process and ``wait`` is False
            or the timeout passed.
    """
    try:
        locks_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(locks_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise LakeError(f"cannot create lock in {locks_dir}: {exc.strerror}") from None
    path = locks_dir / f"{name}.lock"
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                if not wait or (deadline is not None and time.monotonic() >= deadline):
                    raise LockedError(
                        f"another '{name}' run holds the lake lock {path}{holder}; "
                        "wait for it to finish or retry later"
                    ) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield path
    finally:
        os.close(fd)


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 64, 0).decode().strip()
    except OSError:
        return ""
    return f" ({text})" if text else ""
