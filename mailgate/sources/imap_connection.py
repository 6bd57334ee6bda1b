"""Stage 1 for IMAP, the wire: connect, secure the line, log in, find the folders.

``open_mailbox`` returns a logged-in ``IMAPClient`` or raises one ``MailboxError`` whose
message is a single line an admin can act on (DNS, connection, TLS, login, folder).
The poller (``imap.py``) and ``mailboxes test`` (``imap_check.py``) both go through here,
so what the test command reports is exactly what the poller will meet.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import socket
import ssl

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailgate.config import ImapSettings
from mailgate.errors import ConfigError, MailboxError
from mailgate.passwords import read_password

DEFAULT_TIMEOUT = 30.0  # seconds for connecting and for each answer outside IDLE


def open_mailbox(settings: ImapSettings, *, timeout: float = DEFAULT_TIMEOUT) -> IMAPClient:
    """A client connected with the configured security and logged in.

    Raises ``MailboxError`` when the server cannot be used, ``ConfigError`` when the
    password or the CA file cannot be read.
    """
    password = read_password(
        env=settings.password_env, file=settings.password_file, what=f"mailbox {settings.name}"
    )
    if settings.security == "none" and not is_loopback(settings.host):
        # The password would cross the network in clear text, whatever the server says.
        raise MailboxError(
            settings.name,
            "tls",
            f'security = "none" is only allowed for a server on this machine, '
            f"not {settings.host}: use ssl or starttls",
        )
    context = _tls_context(settings)
    client: IMAPClient | None = None
    try:
        client = IMAPClient(
            settings.host,
            settings.port,
            ssl=settings.security == "ssl",
            ssl_context=context,
            timeout=timeout,
        )
        if settings.security == "starttls":
            client.starttls(context)
        client.login(settings.user, password)
    except Exception as exc:
        close_quietly(client)
        raise explain(settings, exc) from exc
    return client


def require_folders(client: IMAPClient, settings: ImapSettings) -> None:
    """Raise ``MailboxError`` (kind ``folder``) unless both configured folders exist."""
    try:
        for folder in (settings.folder, settings.processed_folder):
            if not client.folder_exists(folder):
                raise MailboxError(
                    settings.name,
                    "folder",
                    f"folder {folder!r} does not exist on {settings.host} "
                    f"(create it, or change {_key_of(settings, folder)})",
                )
    except MailboxError:
        raise
    except Exception as exc:
        raise explain(settings, exc) from exc


def explain(settings: ImapSettings, exc: BaseException) -> MailboxError:
    """The one-line ``MailboxError`` for anything raised while talking to the server."""
    if isinstance(exc, MailboxError):
        return exc
    where = f"{settings.host}:{settings.port}"
    match exc:
        case socket.gaierror():
            kind, text = "dns", f"cannot resolve {settings.host}: {exc.strerror}"
        case ssl.SSLCertVerificationError():
            kind = "tls"
            text = (
                f"the TLS certificate of {where} is not trusted ({exc.verify_message}); "
                "set cafile to the CA that signed it"
            )
        case ssl.SSLError():
            kind, text = "tls", f"TLS with {where} failed: {exc.reason or exc}"
            if "WRONG_VERSION_NUMBER" in str(exc):
                text += f' (is {settings.port} a port for security = "{settings.security}"?)'
        case LoginError():
            kind = "login"
            text = f"{where} refused the login of {settings.user}: {_server_text(exc)}"
        case IMAPClientError():
            kind, text = "protocol", f"{where} answered: {_server_text(exc)}"
        case ConnectionRefusedError():
            kind, text = "connect", f"{where} refused the connection"
        case TimeoutError():
            kind, text = "connect", f"{where} did not answer in time"
        case OSError():
            kind, text = "connect", f"connection to {where} failed: {exc.strerror or exc}"
        case _:
            kind, text = "protocol", f"{where}: {type(exc).__name__}: {exc}"
    return MailboxError(settings.name, kind, text)


def close_quietly(client: IMAPClient | None) -> None:
    """Log out if the line still works, else just close it; never raises."""
    if client is None:
        return
    try:
        client.logout()
    except Exception:
        with contextlib.suppress(Exception):
            client.shutdown()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _tls_context(settings: ImapSettings) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=settings.cafile)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"mailbox {settings.name}: cannot read cafile {settings.cafile}: {exc}"
        ) from exc


def _server_text(exc: BaseException) -> str:
    """The server's words without imaplib's ``b'…'`` wrapping and timing suffixes."""
    text = str(exc)
    match = re.fullmatch(r"""b(['"])(.*)\1""", text)
    if match:
        text = match.group(2)
    text = re.sub(r"\s*\(\d+\.\d+ \+ \d+\.\d+(?: \+ \d+\.\d+)? secs\)\.?", "", text)
    return " ".join(text.split())


def _key_of(settings: ImapSettings, folder: str) -> str:
    return "folder" if folder == settings.folder else "processed_folder"
