"""Stage 5b, identify: who wrote this mail — an agent, a shop user, or a stranger.

Looks the From address up in the directory and combines it with the authentication
verdict of stage 5a (``mailgate.auth``). A From header alone proves nothing: a sender is
*verified* only when registered AND authenticated for the From domain. A From the parser
had to repair or two From headers are never matched to anyone (``mailgate.from_check``);
an encoded word inside the address leaves no address at all (the mail is suspended). An
agent's address without authentication is a stranger's: agents act on tickets, so their
mail must prove where it comes from.
"""

from __future__ import annotations

from typing import Protocol

from mailgate.from_check import from_problem, has_encoded_word
from mailgate.values import AuthResult, ParsedMail, Sender, SenderKind
from store.lookups import AgentRef, ShopUserRef


class Directory(Protocol):
    def agent(self, email: str) -> AgentRef | None: ...
    def shop_user(self, email: str) -> ShopUserRef | None: ...


def identify(mail: ParsedMail, auth: AuthResult, directory: Directory) -> Sender:
    address = mail.from_address
    if address is not None and has_encoded_word(address):
        # Not an address anyone can be answered at: a reader shows the decoded text, the
        # relay delivers to the raw one. The mail is kept as suspended (unusable sender).
        return Sender(SenderKind.STRANGER, None, mail.from_name)
    if address is None or from_problem(mail) is not None:
        return Sender(SenderKind.STRANGER, address, mail.from_name)
    authenticated = auth.authenticated and auth.verified_domain == _domain(address)
    verified_by = auth.source if authenticated else None
    agent = directory.agent(address)
    if agent is not None:
        if not authenticated:
            return Sender(SenderKind.STRANGER, address, mail.from_name)
        return Sender(
            SenderKind.AGENT,
            address,
            agent.name or mail.from_name,
            agent_id=agent.id,
            verified=True,
            verified_by=verified_by,
        )
    user = directory.shop_user(address)
    if user is not None:
        return Sender(
            SenderKind.SHOP_USER,
            address,
            user.name or mail.from_name,
            shop_id=user.shop_id,
            verified=authenticated,
            verified_by=verified_by,
        )
    return Sender(SenderKind.STRANGER, address, mail.from_name)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")
