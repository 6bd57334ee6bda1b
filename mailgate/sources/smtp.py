"""Stage 1 over SMTP: an aiosmtpd listener that answers 250 only after the commit.

aiosmtpd's defaults break that promise in ways fixed here: an exception in a handler
becomes ``500 Error: (Type) text`` (a permanent bounce that leaks internals) — ours is
always ``451 4.3.0``; lines over 1,001 bytes are refused although real clients send them;
any number of recipients is accepted. Replies come from ``replies.py`` only.

Per-connection limits keep one client from holding the listener: recipients per mail,
command line length (RFC 5321's 512), MAIL commands per connection (and a budget for the
others), clients served at once, idle time between commands (aiosmtpd's ``timeout``,
which also bounds the whole DATA phase), and the age of a connection — a slow client that
keeps sending a byte before each timeout is closed when its session is too old.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
from collections.abc import Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from aiosmtpd.smtp import Session as SmtpSession

from mailgate.addresses import OurAddresses
from mailgate.apply import Outcome
from mailgate.committer import GroupCommitter
from mailgate.config import SmtpSettings
from mailgate.errors import RejectedMail
from mailgate.prepare_pool import PreparePool
from mailgate.preparer import Prepared
from mailgate.sources import replies
from mailgate.sources.smtp_data import read_data
from mailgate.values import Arrival, Envelope, Source
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)

# NOOP, HELP, VRFY, EHLO…: what a client that is not sending mail may say per connection.
_OTHER_COMMANDS_PER_CONNECTION = 20


class ConnectionCount:
    """Clients connected to one listener, against its ``max_connections``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def enter(self) -> bool:
        """Count a new client in; False when the listener is full."""
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


# A path as nearly every client writes it: <dot-atom@dot-atom>, then blanks and the
# parameters. aiosmtpd reads every path with the email package's header parser (and
# makes a class for it on each call): a sixth of the listener's time under load.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOMAIN = r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*"
_PLAIN_PATH = re.compile(
    rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@{_DOMAIN})>(?:[ \t]+([^ \t(].*))?[ \t]*", re.DOTALL
)


def plain_path(arg: str) -> tuple[str, str] | None:
    """The address and the rest of a plain ``<local@domain> PARAMS`` path, exactly as
    aiosmtpd's parser reads it; None for anything else (which aiosmtpd then reads)."""
    match = _PLAIN_PATH.fullmatch(arg)
    if match is None:
        return None
    return match[1], match[2] or ""


class MailgateSMTP(SMTP):
    """aiosmtpd's protocol with our limits and our reply texts."""

    def __init__(
        self,
        handler: Any,
        *,
        line_length_limit: int,
        command_line_limit: int,
        connections: ConnectionCount,
        max_session_seconds: float,
        **kwargs: Any,
    ) -> None:
        # Read by SMTP.__init__ to size the stream reader, so it must be set first.
        self.line_length_limit = line_length_limit
        super().__init__(handler, **kwargs)
        # aiosmtpd keeps the per-command limits (raised by EHLO for SIZE and SMTPUTF8) in a
        # dict shared by every connection; each connection gets its own here.
        self.command_size_limit = command_line_limit
        self.command_size_limits = collections.defaultdict(lambda: command_line_limit)
        self._connections = connections
        self._counted = False
        self._max_session = max_session_seconds
        self._deadline: asyncio.TimerHandle | None = None
        self._in_data = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = plain_path(arg)
        if plain is None or (
            self.local_part_limit and len(plain[0].rpartition("@")[0]) > self.local_part_limit
        ):
            return super()._getaddr(arg)
        return plain

    async def push(self, status: Any) -> None:
        if isinstance(status, str):
            status = replies.rewrite(status)
        await super().push(status)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        first = self.transport is None  # STARTTLS calls this again on the same session
        if first:
            self._counted = self._connections.enter()
            self._deadline = self.loop.call_later(self._max_session, self._session_expired)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self._counted:
            self._connections.leave()
            self._counted = False
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        # aiosmtpd 1.4.6's per-connection coroutine: the one place to refuse before 220.
        if not self._counted:
            await self.push(replies.TOO_MANY_CONNECTIONS)
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    async def smtp_DATA(self, arg: str | None) -> None:
        self._in_data = True
        try:
            await self._data(arg)
        finally:
            self._in_data = False

    async def _data(self, arg: str | None) -> None:
        """aiosmtpd 1.4.6's ``smtp_DATA``, the mail read into one buffer.

        aiosmtpd keeps one bytearray per line and joins them at the end: a 34 MB mail
        (25 MB of base64) was 440,000 objects, +64 MB, then +34 MB joined before our
        handler ran (bench/README.md, Memory). Here ``read_data`` reads it in blocks
        into a ``BytesIO``, whose ``getvalue`` hands over its buffer without a copy: the
        mail is held once (``mailgate/sources/smtp_data.py``).
        Replies, limits and the handler call are aiosmtpd's (with ``decode_data`` off,
        ``envelope.content`` is ``original_content``).
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        original_content = await self._read_mail()
        if isinstance(original_content, str):
            await self.push(original_content)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = self.envelope.original_content = original_content
        del original_content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_mail(self) -> bytes | str:
        """The mail, dot-unstuffed; or the reply refusing it, once it has all been read."""
        try:
            return await read_data(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit
            )
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise

    def _session_expired(self) -> None:
        if self.transport is None:
            return
        if self._in_data:
            # A mail is being read or committed: never cut it off (its 250 is owed once
            # committed); aiosmtpd's idle timeout still bounds a stalled DATA phase.
            self._deadline = self.loop.call_later(5.0, self._session_expired)
            return
        log.info("closing a connection open longer than %ss", self._max_session)
        if isinstance(self.transport, asyncio.WriteTransport):
            self.transport.write(f"{replies.SESSION_TOO_LONG}\r\n".encode())
        self.transport.close()


class SmtpHandler:
    """The aiosmtpd handler: recipient check, then prepare → group commit → reply."""

    def __init__(
        self,
        *,
        preparing: PreparePool,
        committer: GroupCommitter,
        ours: OurAddresses,
        settings: SmtpSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self.preparing = preparing
        self.committer = committer
        self.ours = ours
        self.settings = settings
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
            await asyncio.wrap_future(_then_commit(self.preparing.submit(arrival), self.committer))
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


def _then_commit(preparing: Future[Prepared], committer: GroupCommitter) -> Future[Outcome]:
    """The mail's commit, handed to the committer by whichever thread finishes preparing
    it (in a child process's reader thread, mostly), not by the event loop: one wait
    less for a busy loop between the two halves of every mail."""
    committed: Future[Outcome] = Future()

    def prepared(done: Future[Prepared]) -> None:
        try:
            following = committer.submit(done.result())
        except BaseException as exc:
            with _unless_hung_up(committed):
                committed.set_exception(exc)
            return
        following.add_done_callback(_copy_to(committed))

    preparing.add_done_callback(prepared)
    return committed


def _copy_to(target: Future[Outcome]) -> Callable[[Future[Outcome]], None]:
    def copy(done: Future[Outcome]) -> None:
        with _unless_hung_up(target):
            error = done.exception()
            if error is not None:
                target.set_exception(error)
            else:
                target.set_result(done.result())

    return copy


@contextmanager
def _unless_hung_up(target: Future[Outcome]) -> Iterator[None]:
    """Give the session waiting on ``target`` its answer in this block, unless it is gone:
    a client that hangs up before its reply cancels the wait. The mail is committed all
    the same, and the client sends it again (a duplicate delivery)."""
    try:
        yield
    except InvalidStateError:
        if not target.cancelled():
            raise


class SmtpListener:
    """The listening socket; ``start`` binds (port 0 picks a free port), ``stop`` drains."""

    def __init__(
        self, handler: SmtpHandler, settings: SmtpSettings, *, reuse_port: bool = False
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.reuse_port = reuse_port  # SO_REUSEPORT: worker processes share the port
        self.server: asyncio.base_events.Server | None = None
        self.connections = ConnectionCount(settings.max_connections)

    def _protocol(self) -> MailgateSMTP:
        settings = self.settings
        mails = settings.max_messages_per_connection
        return MailgateSMTP(
            self.handler,
            line_length_limit=settings.line_length_limit,
            command_line_limit=settings.command_line_limit,
            connections=self.connections,
            max_session_seconds=settings.max_session_seconds,
            data_size_limit=settings.max_message_size,
            hostname=settings.hostname,
            ident="Mailgate",
            timeout=settings.timeout,
            enable_SMTPUTF8=True,
            # Over budget: "421 4.7.0 <COMMAND> sent too many times" and the connection closes.
            command_call_limit={
                "MAIL": mails,
                "DATA": mails,
                "RCPT": mails * settings.max_recipients,
                "RSET": mails,
                "*": _OTHER_COMMANDS_PER_CONNECTION,
            },
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
