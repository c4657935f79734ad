"""Keep delta-rs's panic text off the terminal; the error it becomes says it in one line.

On a full disk delta-rs's tokio workers panic ("Already shut down") while the
write fails with a proper ``No space left on device`` error. Rust's panic hook
prints straight to file descriptor 2, with a backtrace when RUST_BACKTRACE is
set: several lines no Python code can catch, around the one-line error the
user should read. :func:`quiet_rust_panics` points fd 2 at a pipe around a
Delta call; a thread copies everything to the real stderr as it arrives
(progress bars and log lines stay live) except the panic blocks, which go to
the debug log instead.
"""

from __future__ import annotations

import codecs
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Iterator

log = logging.getLogger(__name__)

_PANIC = re.compile(r"^thread '.*' (\(\d+\) )?panicked at ")
_PANIC_START = "thread '"
# What follows the panic line and its one-line message: the backtrace and the notes.
_BACKTRACE = re.compile(r"^(stack backtrace:|\s+\d+: |\s+at |note: .*RUST_BACKTRACE|"
                        r"note: Some details are omitted)")
_lock = threading.Lock()
_depth = 0
_active: tuple[int, threading.Thread] | None = None  # (the saved fd 2, the copying thread)


@contextlib.contextmanager
def quiet_rust_panics() -> Iterator[None]:
    """Around a delta-rs call: its panic text goes to the debug log, not to stderr.

    Re-entrant and safe across threads: the first caller redirects fd 2, the
    last one restores it. Without a usable fd 2 (or a pipe) it does nothing.
    """
    _enter()
    try:
        yield
    finally:
        _exit()


def _enter() -> None:
    global _depth, _active
    with _lock:
        _depth += 1
        if _depth > 1:
            return
        try:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            saved = os.dup(2)
            out = os.dup(2)
            read, write = os.pipe()
        except OSError:
            _depth -= 1
            return
        os.dup2(write, 2)
        os.close(write)
        thread = threading.Thread(target=_copy, args=(read, out), daemon=True,
                                  name="lakehouse-stderr-filter")
        thread.start()
        _active = (saved, thread)


def _exit() -> None:
    global _depth, _active
    with _lock:
        if _depth == 0:
            return
        _depth -= 1
        if _depth or _active is None:
            return
        (saved, thread), _active = _active, None
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer goes (unless a child process holds it)
        os.close(saved)
    thread.join(timeout=2)


def _copy(read: int, out: int) -> None:
    """Copy the pipe to ``out`` until its writers are gone, leaving out panic blocks."""
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    panics = PanicFilter()
    try:
        while chunk := os.read(read, 65536):
            _write(out, panics.feed(decoder.decode(chunk)))
        _write(out, panics.feed(decoder.decode(b"", final=True), final=True))
    finally:
        os.close(read)
        os.close(out)
    for message in panics.messages:
        log.debug("delta-rs panic, its error follows as an exception: %s", message)


def _write(fd: int, text: str) -> None:
    if text:
        with contextlib.suppress(OSError):
            os.write(fd, text.encode())


class PanicFilter:
    """Text in, text out, without Rust panic blocks; fed in pieces as they arrive.

    A block is a blank line, ``thread '...' panicked at <where>:``, the
    panic's message line, then any backtrace and notes. Complete lines that
    are not part of one pass at once; so does a partial line that cannot be
    the start of one (a progress bar's ``\\r`` redraw).
    """

    def __init__(self) -> None:
        self._buffer = ""
        self._blank = ""          # a blank line held: it may open a panic block
        self._state = "text"      # text | message | backtrace
        self.messages: list[str] = []

    def feed(self, text: str, final: bool = False) -> str:
        """What of ``text`` (after what was held) can be written now."""
        self._buffer += text
        out: list[str] = []
        while "\n" in self._buffer:
            line, self._buffer = self._buffer.split("\n", 1)
            out.append(self._line(line + "\n"))
        rest = self._buffer
        could_open = _PANIC_START.startswith(rest[:len(_PANIC_START)]) or \
            rest.startswith(_PANIC_START)
        if final or (self._state == "text" and rest and not could_open):
            self._buffer = ""
            out.append(self._blank if self._state == "text" else "")
            self._blank = ""
            out.append(rest if self._state == "text" else "")
        return "".join(out)

    def _line(self, line: str) -> str:
        if self._state == "message":
            self.messages.append(line.strip())
            self._state = "backtrace"
            return ""
        if self._state == "backtrace":
            if _BACKTRACE.match(line):
                return ""
            self._state = "text"
        if _PANIC.match(line):
            self._blank = ""
            self._state = "message"
            return ""
        if not line.strip():
            held, self._blank = self._blank, line
            return held
        held, self._blank = self._blank, ""
        return held + line
