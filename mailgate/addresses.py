"""Our own addresses: which recipients are ours, and plus-addressed ticket numbers."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A tag holds no space or control character: "support+\x0012@" is no address of ours.
_PLUS_TICKET = re.compile(r"^(?P<local>[^+@]+)\+(?P<tag>[^@\s\x00-\x1f\x7f]+)@(?P<domain>.+)$")


@dataclass(frozen=True, slots=True)
class OurAddresses:
    """The support addresses we accept mail for (plus-addressing implied)."""

    addresses: tuple[str, ...]

    @classmethod
    def of(cls, addresses: tuple[str, ...] | list[str]) -> OurAddresses:
        return cls(tuple(a.strip().lower() for a in addresses))

    def base_of(self, address: str) -> str | None:
        """``support+39430@x`` → ``support@x`` when that is ours; ours as is; else None."""
        address = address.strip().strip("<>").lower()
        if address in self.addresses:
            return address
        m = _PLUS_TICKET.match(address)
        if m:
            base = f"{m['local']}@{m['domain']}"
            if base in self.addresses:
                return base
        return None

    def is_ours(self, address: str) -> bool:
        return self.base_of(address) is not None

    def plus_tag(self, address: str) -> str | None:
        """The ``+tag`` part of one of our addresses, if any."""
        address = address.strip().strip("<>").lower()
        m = _PLUS_TICKET.match(address)
        if m and f"{m['local']}@{m['domain']}" in self.addresses:
            return m["tag"]
        return None
