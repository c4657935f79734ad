"""One alert: its kind, severity, subject and message, and the body sinks receive.

The alert rules (:mod:`lakehouse.monitor.alerts`,
:mod:`lakehouse.monitor.recommendations`) make these; the sinks deliver them.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import dataclass, field
from typing import Any

from lakehouse.config import Settings
from lakehouse.lake import utc_now

ERROR = "error"
WARNING = "warning"

# Alert kinds.
RUN_FAILED = "run_failed"
QUARANTINE_SHARE = "quarantine_share"
ROW_CHANGE = "row_change"
GATE_FAILED = "gate_failed"
STALE = "stale"
MISSED_SCORING = "missed_scoring"
JOB_FAILED = "job_failed"
TEST = "test"


@dataclass
class Alert:
    """One alert.

    Attributes:
        kind: What kind of problem (``run_failed``, ``stale``, ...).
        subject: What it is about, e.g. ``ingest:users``.
        severity: ``error`` or ``warning``.
        message: One line for a human.
        details: Structured context (run id, counts, thresholds...).
        created_at: When it was raised (UTC).
        suppressed: Set by :func:`send_alerts`: not sent, as the same key was
            sent within the window.
        delivered: Set by :func:`send_alerts`: sink name -> ``"ok"`` or the
            error's class name.
    """

    kind: str
    subject: str
    severity: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    created_at: dt.datetime = field(default_factory=utc_now)
    alert_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    suppressed: bool = False
    delivered: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The de-duplication identity: kind and subject."""
        return f"{self.kind}:{self.subject}"

    @property
    def text(self) -> str:
        """The one-line message chat tools display."""
        return f"[lakehouse {self.severity.upper()}] {self.message}"

    def payload(self, settings: Settings | None = None) -> dict[str, Any]:
        """The JSON body sent to sinks: ``text`` for chat tools, ``alert`` for programs."""
        body = {
            "id": self.alert_id, "key": self.key, "kind": self.kind, "subject": self.subject,
            "severity": self.severity, "message": self.message, "details": self.details,
            "created_at": self.created_at.isoformat(), "host": os.uname().nodename,
        }
        if settings is not None:
            body["lake"] = str(settings.lake)
        return {"text": self.text, "alert": body}
