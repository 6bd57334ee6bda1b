"""Log output: one line per committed mail (the gateway's access log), as text or JSON.

``log_mail`` is called by the pipeline once a mail's transaction has committed; the line
says which mail (Message-ID), what became of it (ticket, outcome, screen verdict) and how
long it took from arrival to commit. ``configure_logging`` chooses the format of every
log line (``[log] format``); with ``json`` each line is one JSON object, ready for a log
collector, and a mail line carries its facts as fields.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from mailgate.apply import Outcome
from mailgate.config import LogSettings
from mailgate.values import Arrival

MAIL_LOGGER = "mailgate.mail"
_mail_log = logging.getLogger(MAIL_LOGGER)


def log_mail(
    arrival: Arrival, message_id: str | None, verdict: str, outcome: Outcome, committed: datetime
) -> None:
    """Log one committed mail (at INFO on ``mailgate.mail``)."""
    if not _mail_log.isEnabledFor(logging.INFO):
        return
    ms = max(0, round((committed - arrival.received_at).total_seconds() * 1000))
    fields = {
        "message_id": message_id,
        "ticket": outcome.ticket_id,
        "outcome": outcome.kind,
        "verdict": verdict,
        "reason": outcome.reason or None,
        "raw_id": outcome.raw_id,
        "source": arrival.source.kind,
        "ms": ms,
    }
    where = f"ticket #{outcome.ticket_id}" if outcome.ticket_id is not None else "no ticket"
    _mail_log.info(
        "mail <%s>: %s, %s (verdict %s%s) in %d ms",
        message_id or "",
        outcome.kind,
        where,
        verdict,
        f", {outcome.reason}" if outcome.reason else "",
        ms,
        extra={"mail": fields},
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and a mail's fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        mail = getattr(record, "mail", None)
        if isinstance(mail, dict):
            line.update(mail)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure_logging(settings: LogSettings, *, mail_lines: bool = False) -> None:
    """Apply ``[log]``: the format of every handler, and (``serve``) the per-mail lines."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.WARNING)
    if settings.format == "json":
        for handler in root.handlers:
            handler.setFormatter(JsonFormatter())
    if mail_lines and settings.mail_lines:
        _mail_log.setLevel(logging.INFO)
