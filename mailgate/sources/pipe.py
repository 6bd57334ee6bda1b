"""Stage 1 from an MTA pipe (``mailgate ingest``): one mail on stdin or in a file.

The exit code is the acknowledgement: 0 only after the commit, 75 (EX_TEMPFAIL) when the
store is unavailable so the MTA keeps the mail and retries, 65 (EX_DATAERR) for input
that is not a mail or is over the size limit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mailgate.apply import Outcome
from mailgate.clock import Clock
from mailgate.errors import RejectedMail
from mailgate.pipeline import Pipeline
from mailgate.sources.exits import EX_DATAERR, EX_OK, EX_TEMPFAIL
from mailgate.values import Arrival, Envelope, Source
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PipeResult:
    exit_code: int
    outcome: Outcome | None
    message: str


def ingest_one(
    pipeline: Pipeline,
    raw: bytes,
    *,
    clock: Clock,
    max_size: int,
    mail_from: str | None = None,
    recipients: tuple[str, ...] = (),
) -> PipeResult:
    if not raw.strip():
        return PipeResult(EX_DATAERR, None, "empty input: not a mail")
    if len(raw) > max_size:
        return PipeResult(EX_DATAERR, None, f"mail is over the size limit of {max_size} bytes")
    arrival = Arrival(raw, Envelope(mail_from, recipients), Source("pipe"), clock())
    try:
        outcome = pipeline.process(arrival)
    except StoreUnavailable as exc:
        return PipeResult(EX_TEMPFAIL, None, f"temporary failure: {exc}")
    except RejectedMail as exc:
        return PipeResult(EX_DATAERR, None, f"rejected: {exc}")
    return PipeResult(EX_OK, outcome, describe(outcome))


def describe(outcome: Outcome) -> str:
    if outcome.kind == "ticket_created":
        return f"new ticket #{outcome.ticket_id}"
    if outcome.kind == "message_added":
        return f"added to ticket #{outcome.ticket_id}"
    if outcome.kind == "duplicate":
        return f"duplicate ({outcome.reason})"
    return f"suspended: {outcome.reason}"
