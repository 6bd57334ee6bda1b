"""Stage 5a helper: the DMARC policy a From domain publishes (RFC 7489 §6.6.3).

Read for two answers: whether DKIM alignment is strict (``adkim=s``) or relaxed, and
whether the domain says its mail is authenticated at all (a published policy) — a domain
without one may be confirmed by mail instead (``mailgate.confirmation``). Raises
``DnsUnavailable`` when the look-up fails: unknown is not "no policy".
"""

from __future__ import annotations

from dataclasses import dataclass

from mailgate.alignment import organizational_domain
from mailgate.resolver import Resolver

_POLICIES = frozenset({"none", "quarantine", "reject"})


@dataclass(frozen=True, slots=True)
class DmarcPolicy:
    domain: str  # where the record was found: the From domain or its organisational domain
    policy: str  # none | quarantine | reject
    strict_dkim: bool  # adkim=s: the DKIM d= must equal the From domain exactly


def find_policy(from_domain: str, resolver: Resolver) -> DmarcPolicy | None:
    """The DMARC record for ``from_domain``, else for its organisational domain, else None."""
    domain = from_domain.lower().rstrip(".")
    found = _policy_at(domain, resolver)
    if found is None:
        org = organizational_domain(domain)
        if org != domain:
            found = _policy_at(org, resolver)
    return found


def _policy_at(domain: str, resolver: Resolver) -> DmarcPolicy | None:
    records = [
        r for r in resolver.txt(f"_dmarc.{domain}") if r.strip().lower().startswith(b"v=dmarc1")
    ]
    if len(records) != 1:
        return None  # none, or several: RFC 7489 says to apply no policy either way
    tags = parse_tags(records[0].decode("ascii", "replace"))
    policy = tags.get("p", "").lower()
    if policy not in _POLICIES:
        return None  # a record without a valid p= is no record (RFC 7489 §6.6.3 step 6)
    return DmarcPolicy(domain, policy, tags.get("adkim", "r").lower() == "s")


def parse_tags(record: str) -> dict[str, str]:
    """``"v=DMARC1; p=reject; adkim=s"`` → ``{"v": "DMARC1", "p": "reject", "adkim": "s"}``."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        name, eq, value = part.partition("=")
        if eq and name.strip():
            tags.setdefault(name.strip().lower(), value.strip())
    return tags
