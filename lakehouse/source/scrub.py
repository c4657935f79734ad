"""Making text that came from the server safe to show, log, store and alert.

A server can reflect the request's ``Authorization`` header in an error body,
and an error body can carry terminal escape sequences. Anything the source
sent passes through :func:`scrub` before it reaches an error line,
``meta.runs`` or an alert.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "<redacted>"
# "Bearer abc", "Basic dXNlcjpwdw==": the scheme stays, the credential goes.
_SCHEMES = re.compile(r"(?i)\b(bearer|basic|digest)(\s+)[^\s\"',;}\]]+")
# "authorization": "...", Authorization: ..., api_key=..., "token": "..."
_FIELDS = re.compile(
    r"(?i)((?:proxy-)?authorization|api[_-]?key|api[_-]?token|access[_-]?token|x-api-key|"
    r"password|secret|token)(\"?'?\s*[:=]\s*\"?'?)(?!\s*(?:bearer|basic|digest)\b)"
    r"[^\s\"',;}\]]+")
# ANSI/VT escape sequences (CSI, OSC, and two-byte ones), then any other control character.
_ESCAPES = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """``text`` without credentials or control characters.

    Args:
        text: Text that (partly) came from the server.
        secrets: Values never to show, e.g. the API token, wherever they appear.

    Returns:
        The text with known secrets, ``Authorization``-style values and bearer
        credentials replaced by ``<redacted>``, escape sequences removed, and
        tabs and newlines turned into spaces.
    """
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = _ESCAPES.sub("", text)
    text = _CONTROLS.sub("", text).replace("\t", " ").replace("\n", " ").replace("\r", " ")
    text = _SCHEMES.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    return _FIELDS.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
