"""Stage 9 (notify) seam: how a rendered mail leaves the building.

A ``Transport`` takes the envelope and the exact bytes and either returns (the mail is
someone else's responsibility now) or raises ``TransportError`` — ``permanent=True``
when trying again cannot help (a 5xx answer to the mail itself), else temporary. The
dispatcher turns that into ``sent``, a retry with backoff, or ``failed``.

``MaildirTransport`` writes to a local maildir (the default: works with no relay),
``SmtpTransport`` talks to a relay (STARTTLS or implicit TLS, AUTH, one connection per
dispatcher round), ``RecordingTransport`` keeps mails in memory for tests.
``transport_from_settings`` builds the configured one.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self, runtime_checkable
from urllib.parse import urlsplit

from mailgate.config import OutboundSettings
from mailgate.errors import ConfigError, TransportError
from mailgate.net import is_loopback
from store import durable

log = logging.getLogger(__name__)

StartTls = Literal["auto", "required", "off"]


@runtime_checkable
class Transport(Protocol):
    """Hands one mail to the next hop.

    Raises ``TransportError`` (``.permanent`` tells whether a retry can help). A
    transport that is also a context manager keeps its connection open for the length
    of the ``with`` block; the dispatcher uses one block per round.
    """

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None: ...

    def flush(self) -> None:
        """Make every mail ``send`` returned for durable (a relay's 250 needs nothing;
        a maildir's files are synced); raises ``TransportError``. The dispatcher calls
        it before it marks mails sent."""
        ...


@dataclass(frozen=True, slots=True)
class SentMail:
    """One mail as a ``RecordingTransport`` received it."""

    mail_from: str
    recipients: tuple[str, ...]
    raw: bytes


class RecordingTransport:
    """Keeps every mail in ``.sent``; raises the queued ``failures`` first, one per send.

    For tests: a relay that is down is ``RecordingTransport([TransportError("down")] * 3)``.
    """

    def __init__(self, failures: Iterable[TransportError] = ()) -> None:
        self.sent: list[SentMail] = []
        self.failures: list[TransportError] = list(failures)
        self.attempts = 0
        self._lock = threading.Lock()

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        with self._lock:
            self.attempts += 1
            if self.failures:
                raise self.failures.pop(0)
            self.sent.append(SentMail(mail_from, tuple(recipients), raw))

    def flush(self) -> None:
        """Nothing to do: the mails are in memory."""


class MaildirTransport:
    """Delivers into a local maildir (created when missing): a mail is written to
    ``tmp/`` and linked into ``new/`` by ``send``, and durable once ``flush`` returns.

    The dispatcher flushes a chunk of mails at once, with one ``syncfs`` where the
    system has it (``store.durable.sync_files``): ``mailbox.Maildir.add`` syncs each
    file as it writes it, and those syncs, each a commit of the file system's journal,
    cost more CPU than the rest of an acknowledgement's delivery. The envelope is kept
    the way a local delivery agent keeps it: ``Return-Path`` and one ``X-Envelope-To``
    line are put on top, and lines end in LF as local files do.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        # Made at the first send, not here: building the gateway for a CLI command that
        # never sends must not need a writable mail folder.
        self._ready = False
        self._lock = threading.Lock()  # guards _unsynced
        self._flushing = threading.Lock()
        self._unsynced: list[Path] = []

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        envelope = (
            f"Return-Path: <{_header_safe(mail_from)}>\n"
            f"X-Envelope-To: {_header_safe(', '.join(recipients))}\n"
        ).encode("ascii", "replace")
        try:
            if not self._ready:
                for sub in ("tmp", "new", "cur"):  # also completes a folder made by hand
                    (self.path / sub).mkdir(parents=True, exist_ok=True)
                self._ready = True
            delivered = _deliver_to_maildir(self.path, envelope + raw.replace(b"\r\n", b"\n"))
        except OSError as exc:
            raise TransportError(f"maildir {self.path}: {exc}") from exc
        with self._lock:
            self._unsynced.append(delivered)

    def flush(self) -> None:
        """Sync the mails delivered since the last flush (files and ``new/``): until
        then a power cut could forget a mail the dispatcher would mark as sent.

        One flush at a time: a flush that finds nothing left to sync must not return
        while another is still syncing its mails. Mails a failed flush could not sync
        stay on the list for the next one."""
        with self._flushing:
            with self._lock:
                unsynced, self._unsynced = self._unsynced, []
            try:
                durable.sync_files(unsynced, self.path)
            except OSError as exc:
                with self._lock:
                    self._unsynced[:0] = unsynced
                raise TransportError(f"maildir {self.path}: {exc}") from exc


_maildir_numbers = itertools.count()  # with the time and pid, a name no one else uses


def _deliver_to_maildir(path: Path, content: bytes) -> Path:
    """Write ``content`` under a unique name in ``tmp/``, then link it into ``new/``
    (the maildir protocol: a reader never sees a half-written mail). Not synced."""
    host = socket.gethostname().replace("/", "\\057").replace(":", "\\072")
    while True:
        now = time.time()
        name = f"{int(now)}.M{int(now % 1 * 1e6)}P{os.getpid()}Q{next(_maildir_numbers)}.{host}"
        tmp = path / "tmp" / name
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            continue
        try:
            try:
                durable.write_all(fd, content)
            finally:
                os.close(fd)
            os.link(tmp, path / "new" / name)
        finally:
            tmp.unlink(missing_ok=True)
        return path / "new" / name


class SmtpTransport:
    """Sends through an SMTP relay with ``smtplib``.

    Used as a context manager, one connection serves every ``send`` in the block (and is
    re-dialled when it breaks); outside a block each ``send`` connects and quits.
    A relay that cannot be reached is not dialled again within the same block: the
    remaining mails fail fast (temporarily) instead of each waiting for a timeout.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        implicit_tls: bool = False,
        starttls: StartTls = "auto",
        user: str | None = None,
        password: str | None = None,
        cafile: str | None = None,
        timeout: float = 30.0,
        local_hostname: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.implicit_tls = implicit_tls
        self.starttls: StartTls = starttls
        self.user = user
        self._password = password
        self.cafile = cafile
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._conn: smtplib.SMTP | None = None
        self._in_batch = False
        self._unreachable: TransportError | None = None
        self._lock = threading.Lock()
        self.connections_opened = 0  # for the operator's logs and the tests

    # -- batch -------------------------------------------------------------------------

    def open(self) -> None:
        """Start a batch: the connection (made at the first send) stays open until close."""
        self._in_batch = True
        self._unreachable = None

    def close(self) -> None:
        """End the batch and say QUIT politely (errors on the way out do not matter)."""
        self._in_batch = False
        self._unreachable = None
        self._drop(quit_first=True)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- sending -----------------------------------------------------------------------

    def flush(self) -> None:
        """Nothing to do: the relay's 250 made each mail the relay's."""

    def send(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        """Send one mail. Raises ``TransportError`` (permanent for 5xx to the mail)."""
        with self._lock:
            try:
                self._send_once(mail_from, recipients, raw)
            finally:
                if not self._in_batch:
                    self._drop(quit_first=True)

    def _send_once(self, mail_from: str, recipients: Sequence[str], raw: bytes) -> None:
        reused = self._conn is not None
        conn = self._connection()
        try:
            refused = conn.sendmail(mail_from, list(recipients), raw)
        except smtplib.SMTPServerDisconnected as exc:
            self._drop(quit_first=False)
            if not reused:
                raise TransportError(f"relay {self.host} hung up: {exc}") from exc
            # A kept connection may have been closed by the relay's idle timeout since
            # the last mail: that says nothing about this mail, so dial again once.
            conn = self._connection()
            try:
                refused = conn.sendmail(mail_from, list(recipients), raw)
            except (smtplib.SMTPException, OSError) as again:
                raise self._failed(again) from again
        except (smtplib.SMTPException, OSError) as exc:
            raise self._failed(exc) from exc
        _log_refused(refused)

    def _failed(self, exc: Exception) -> TransportError:
        # After a reply (4xx/5xx) smtplib has reset the transaction and the connection can
        # carry the next mail; after anything else its state is unknown: drop it.
        if not isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused):
            self._drop(quit_first=False)
        return _transaction_error(self.host, exc)

    def _connection(self) -> smtplib.SMTP:
        if self._conn is not None:
            return self._conn
        if self._unreachable is not None:
            raise TransportError(f"{self._unreachable} (not dialled again in this round)")
        try:
            self._conn = self._connect()
        except TransportError as exc:
            if self._in_batch:
                self._unreachable = exc
            raise
        return self._conn

    def _connect(self) -> smtplib.SMTP:
        """A ready connection: greeted, TLS as configured, authenticated.

        Every failure here is temporary, whatever the reply code: a refused login or a
        missing STARTTLS is the relay's or the configuration's problem, not the mail's,
        and must not fail every queued notification for good.
        """
        context = ssl.create_default_context(cafile=self.cafile)
        conn: smtplib.SMTP | None = None
        try:
            if self.implicit_tls:
                conn = smtplib.SMTP_SSL(
                    self.host,
                    self.port,
                    local_hostname=self.local_hostname,
                    timeout=self.timeout,
                    context=context,
                )
            else:
                conn = smtplib.SMTP(
                    self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
                )
            self.connections_opened += 1
            conn.ehlo()
            encrypted = self.implicit_tls
            if not self.implicit_tls and self.starttls != "off":
                if conn.has_extn("starttls"):
                    conn.starttls(context=context)
                    conn.ehlo()
                    encrypted = True
                elif self.starttls == "required":
                    raise TransportError(f"relay {self.host} does not offer STARTTLS")
            if self.user:
                self._login(conn, encrypted=encrypted)
        except TransportError:
            _quietly_close(conn)
            raise
        except (smtplib.SMTPException, OSError) as exc:
            _quietly_close(conn)
            raise TransportError(f"relay {self.host}:{self.port}: {_describe(exc)}") from exc
        return conn

    def _login(self, conn: smtplib.SMTP, *, encrypted: bool) -> None:
        if not encrypted and not is_loopback(self.host):
            # A password in clear text over the network is a leak, whatever the relay says.
            raise TransportError(f"refusing to send the relay password to {self.host} unencrypted")
        if self._password is None:
            raise TransportError(f"no password for relay user {self.user}")
        assert self.user is not None
        conn.login(self.user, self._password)

    def _drop(self, *, quit_first: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if quit_first:
            try:
                conn.quit()
                return
            except (smtplib.SMTPException, OSError):
                pass
        _quietly_close(conn)


def transport_from_settings(settings: OutboundSettings) -> Transport:
    """The transport named by ``outbound.transport``. Raises ``ConfigError`` if unknown.

    ``maildir:PATH``, ``smtp://host[:port]`` (default port 25, STARTTLS as configured),
    ``smtps://host[:port]`` (implicit TLS, default port 465).
    """
    spec = settings.transport.strip()
    if spec.startswith("maildir:"):
        path = spec.removeprefix("maildir:")
        if not path:
            raise ConfigError("outbound.transport: maildir: needs a path")
        return MaildirTransport(Path(path))
    parts = urlsplit(spec)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(
            f"outbound.transport: {spec!r} is not maildir:PATH, smtp://host:port or smtps://…"
        )
    try:
        port = parts.port or (465 if parts.scheme == "smtps" else 25)
    except ValueError as exc:
        raise ConfigError(f"outbound.transport: bad port in {spec!r}") from exc
    secret = settings.password()
    return SmtpTransport(
        parts.hostname,
        port,
        implicit_tls=parts.scheme == "smtps",
        starttls=settings.starttls,
        user=settings.user,
        password=secret.get_secret_value() if secret is not None else None,
        cafile=settings.cafile,
        timeout=settings.timeout,
    )


def _transaction_error(host: str, exc: Exception) -> TransportError:
    """Map an error during MAIL/RCPT/DATA: a 5xx answer is permanent, the rest temporary."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        permanent = bool(codes) and all(500 <= code < 600 for code in codes)
        details = "; ".join(
            f"{rcpt}: {code} {_text(msg)}" for rcpt, (code, msg) in exc.recipients.items()
        )
        return TransportError(
            f"relay {host} refused every recipient: {details}", permanent=permanent
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        permanent = 500 <= exc.smtp_code < 600
        return TransportError(
            f"relay {host}: {exc.smtp_code} {_text(exc.smtp_error)}", permanent=permanent
        )
    return TransportError(f"relay {host}: {_describe(exc)}")


def _log_refused(refused: dict[str, tuple[int, bytes]]) -> None:
    # Some recipients took the mail, others did not. Sending again would duplicate it for
    # the ones who got it, so the mail counts as sent and the refusals are logged.
    for rcpt, (code, msg) in refused.items():
        log.warning("relay refused recipient %s: %s %s", rcpt, code, _text(msg))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        return f"{exc.smtp_code} {_text(exc.smtp_error)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _quietly_close(conn: smtplib.SMTP | None) -> None:
    if conn is None:
        return
    with contextlib.suppress(OSError):
        conn.close()


def _header_safe(value: str) -> str:
    return "".join(c if c.isprintable() else " " for c in value)
