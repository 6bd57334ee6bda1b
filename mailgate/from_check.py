"""Stage 5 helper: is the From address one that may be matched to a registered user?

A From header alone proves nothing, and some prove less than nothing: two From headers
(readers show one, DKIM may cover the other), an RFC 2047 encoded word inside the address
(clients decode it and show an address that is not the one the mail came from), or a
From the parser could only repair (which part it kept is a guess). Such a sender is never
verified and never matched to a shop user or an agent.
"""

from __future__ import annotations

from mailgate.parse import FROM_REPAIRED
from mailgate.values import ParsedMail


def has_encoded_word(address: str) -> bool:
    """RFC 2047 forbids encoded words in an addr-spec; readers decode them all the same."""
    return "=?" in address or "?=" in address


def from_problem(mail: ParsedMail) -> str | None:
    """Why ``mail``'s From must not be matched to anyone, or None when it may be."""
    if mail.from_header_count != 1:
        return f"{mail.from_header_count} From headers"
    if mail.from_address is None:
        return "no readable From address"
    if has_encoded_word(mail.from_address):
        return f"encoded word inside the From address: {mail.from_address}"
    if FROM_REPAIRED in mail.defects:
        return "From header repaired by the parser"
    return None
