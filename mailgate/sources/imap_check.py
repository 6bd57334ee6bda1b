"""``mailboxes test``: can this mailbox be read, and how much is waiting?

Goes the poller's way (``imap_connection``): connect, secure, log in, find both folders,
then count the mails waiting — read-only, nothing is fetched or moved. Any failure is
the same one-line ``MailboxError`` the poller would record.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.config import ImapSettings
from mailgate.errors import MailboxError
from mailgate.sources.imap_connection import (
    close_quietly,
    explain,
    open_mailbox,
    require_folders,
)

CHECK_TIMEOUT = 15.0  # an admin at a terminal should not wait the poller's 30 s


@dataclass(frozen=True, slots=True)
class MailboxCheck:
    """What a successful check found."""

    settings: ImapSettings
    waiting: int  # mails in the folder, not flagged \Deleted
    idle: bool  # the server offers IDLE (new mail within seconds)
    move: bool  # the server offers MOVE (else COPY + \Deleted + EXPUNGE)

    def summary(self) -> str:
        s = self.settings
        return (
            f"mailbox {s.name}: ok — logged in to {s.host}:{s.port} ({s.security}) as {s.user}; "
            f"{s.folder!r} has {self.waiting} waiting mail{'s' if self.waiting != 1 else ''}, "
            f"{s.processed_folder!r} exists; IDLE {'yes' if self.idle else 'no'}, "
            f"MOVE {'yes' if self.move else 'no'}"
        )


def check_mailbox(settings: ImapSettings, *, timeout: float = CHECK_TIMEOUT) -> MailboxCheck:
    """Connect, log in, check both folders and count waiting mails.

    Raises ``MailboxError`` (DNS, connection, TLS, login, folder) or ``ConfigError``
    (password or CA file unreadable).
    """
    client = open_mailbox(settings, timeout=timeout)
    try:
        require_folders(client, settings)
        client.select_folder(settings.folder, readonly=True)
        waiting = len(client.search(["UNDELETED"]))
        return MailboxCheck(
            settings,
            waiting,
            idle=client.has_capability("IDLE"),
            move=client.has_capability("MOVE"),
        )
    except MailboxError:
        raise
    except Exception as exc:
        raise explain(settings, exc) from exc
    finally:
        close_quietly(client)
