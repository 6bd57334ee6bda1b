"""Stage 1 over SMTP: an aiosmtpd listener that answers 250 only after the commit.

aiosmtpd's defaults break that promise in ways fixed here: an exception in a handler
becomes ``500 Error: (Type) text`` (a permanent bounce that leaks internals) — ours is
always ``451 4.3.0``; lines over 1,001 bytes are refused although real clients send them;
any number of recipients is accepted. Replies come from ``replies.py`` only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any

from aiosmtpd.smtp import SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailgate.addresses import OurAddresses
from mailgate.committer import GroupCommitter
from mailgate.config import SmtpSettings
from mailgate.errors import RejectedMail
from mailgate.pipeline import Pipeline
from mailgate.sources import replies
from mailgate.values import Arrival, Envelope, Source
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)


class MailgateSMTP(SMTP):
    """aiosmtpd's protocol with our limits and our reply texts."""

    def __init__(self, handler: Any, *, line_length_limit: int, **kwargs: Any) -> None:
        # Read by SMTP.__init__ to size the stream reader, so it must be set first.
        self.line_length_limit = line_length_limit
        super().__init__(handler, **kwargs)

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = replies.rewrite(status)
        await super().push(status)


class SmtpHandler:
    """The aiosmtpd handler: recipient check, then prepare → group commit → reply."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        committer: GroupCommitter,
        ours: OurAddresses,
        settings: SmtpSettings,
        executor: Executor,
        clock: Callable[[], datetime],
    ) -> None:
        self.pipeline = pipeline
        self.committer = committer
        self.ours = ours
        self.settings = settings
        self.executor = executor
        self.clock = clock
        self.in_flight = 0

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SmtpSession,
        envelope: SmtpEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.ours.is_ours(address):
            return replies.UNKNOWN_RECIPIENT
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        return replies.RECIPIENT_OK

    async def handle_DATA(self, server: SMTP, session: SmtpSession, envelope: SmtpEnvelope) -> str:
        raw = envelope.original_content or b""
        arrival = Arrival(
            raw=bytes(raw),
            envelope=Envelope(envelope.mail_from, tuple(envelope.rcpt_tos)),
            source=Source("smtp"),
            received_at=self.clock(),
        )
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            prepared = await loop.run_in_executor(self.executor, self.pipeline.prepare, arrival)
            await asyncio.wrap_future(self.committer.submit(prepared))
        except StoreUnavailable as exc:
            log.warning("451 for a mail from %s: %s", envelope.mail_from, exc)
            return replies.STORE_UNAVAILABLE
        except RejectedMail:
            return replies.POLICY_REJECTED
        except Exception:
            log.exception("unexpected failure while taking a mail; answered 451")
            return replies.STORE_UNAVAILABLE
        finally:
            self.in_flight -= 1
        return replies.ACCEPTED

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session error", exc_info=error)
        return replies.STORE_UNAVAILABLE


class SmtpListener:
    """The listening socket; ``start`` binds (port 0 picks a free port), ``stop`` drains."""

    def __init__(
        self, handler: SmtpHandler, settings: SmtpSettings, *, reuse_port: bool = False
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.reuse_port = reuse_port  # SO_REUSEPORT: worker processes share the port
        self.server: asyncio.base_events.Server | None = None

    def _protocol(self) -> MailgateSMTP:
        return MailgateSMTP(
            self.handler,
            line_length_limit=self.settings.line_length_limit,
            data_size_limit=self.settings.max_message_size,
            hostname=self.settings.hostname,
            ident="Mailgate",
            timeout=self.settings.timeout,
            enable_SMTPUTF8=True,
        )

    async def start(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            self._protocol,
            host=self.settings.host,
            port=self.settings.port,
            reuse_address=True,
            reuse_port=self.reuse_port or None,
        )
        host, port = self.server.sockets[0].getsockname()[:2]
        log.info("SMTP listener on %s:%s", host, port)
        return host, port

    async def stop(self, grace_seconds: float = 30.0) -> None:
        """Stop accepting connections; let the mails already in DATA finish."""
        if self.server is None:
            return
        self.server.close()
        waited = 0.0
        while self.handler.in_flight and waited < grace_seconds:
            await asyncio.sleep(0.05)
            waited += 0.05
        self.server = None
