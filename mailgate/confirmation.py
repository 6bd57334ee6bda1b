"""Confirmation by mail: proof that a request came from the registered mailbox itself.

For registered addresses whose domain publishes no DKIM (nor DMARC), a From header is all
there is — and anyone can write one. So a confidential request from such an address is
confirmed out of band: Mailgate mails the registered address a one-time token, carried
in a signed reply address (``support+confirm-<id>-<nonce>-<mac>@…``), and the request
counts as verified (``confirmed``) only when a mail from that address comes back to that
token. Whoever forged the From never sees the mail, so never sees the token. Tokens are
single-use, expire (``[auth] confirmation_hours``), and are checked by HMAC before the
store is asked, so guessed ones cost nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session

from mailgate.addresses import OurAddresses
from store.confirmations import (
    confirmation_by_nonce,
    create_confirmation,
    mark_confirmed,
    open_confirmation,
)
from store.models import IdentityConfirmation

_TOKEN = re.compile(r"confirm-(?P<id>\d{1,18})-(?P<nonce>[0-9a-f]{16})-(?P<mac>[0-9a-f]{16})")


@dataclass(frozen=True, slots=True)
class Redemption:
    """What a token in a mail's recipients came to."""

    ticket_id: int | None  # the confirmed ticket; None when refused
    detail: str


@dataclass(frozen=True, slots=True)
class Confirmations:
    secret: bytes
    ours: OurAddresses
    base_address: str  # ours, e.g. support@example.com; the token goes after a "+"
    lifetime: timedelta

    def issue(self, session: Session, ticket_id: int, email: str, now: datetime) -> str | None:
        """A new token for ``email`` on ``ticket_id``, as its reply address; None when one
        mailed earlier is still open (the merchant is asked once, not once per mail)."""
        if open_confirmation(session, ticket_id, email, now) is not None:
            return None
        nonce = secrets.token_hex(8)
        row = create_confirmation(
            session,
            ticket_id=ticket_id,
            email=email,
            nonce=nonce,
            now=now,
            expires_at=now + self.lifetime,
        )
        assert row.id is not None
        local, _, domain = self.base_address.partition("@")
        return f"{local}+confirm-{row.id}-{nonce}-{self._mac(row.id, nonce)}@{domain}"

    def redeem(
        self,
        session: Session,
        recipients: tuple[str, ...],
        sender: str | None,
        *,
        raw_id: int | None,
        now: datetime,
    ) -> Redemption | None:
        """Use the token among ``recipients``, if any; None when the mail carries none."""
        for address in recipients:
            match = _TOKEN.fullmatch(self.ours.plus_tag(address) or "")
            if match is None:
                continue
            confirmation_id, nonce = int(match["id"]), match["nonce"]
            if not hmac.compare_digest(self._mac(confirmation_id, nonce), match["mac"]):
                return Redemption(None, f"forged confirmation address {address}")
            row = confirmation_by_nonce(session, nonce)
            if row is None or row.id != confirmation_id:
                return Redemption(None, f"unknown confirmation {confirmation_id}")
            refused = _refusal(row, sender, now)
            if refused is not None:
                return Redemption(None, f"confirmation {confirmation_id} {refused}")
            mark_confirmed(session, row, now=now, raw_id=raw_id)
            return Redemption(row.ticket_id, f"confirmation {confirmation_id} answered by {sender}")
        return None

    def _mac(self, confirmation_id: int, nonce: str) -> str:
        message = f"confirm.{confirmation_id}.{nonce}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()[:16]


def _refusal(row: IdentityConfirmation, sender: str | None, now: datetime) -> str | None:
    if row.confirmed_at is not None:
        return "was already used"
    if row.expires_at <= now:
        return "expired"
    if sender is None or sender.lower() != row.email:
        # The token went to row.email: an answer from anywhere else proves nothing.
        return f"answered by {sender}, not by {row.email}"
    return None
