"""Stage 5a, authenticate: is this mail really from its From domain?

Two paths, as DESIGN.md defines a verified sender:
- ``Authentication-Results`` added by our own front MTA — trusted ONLY when its
  authserv-id is listed in ``[auth] trusted_authserv_ids``; anyone can write such a
  header, so others are ignored and never shown as proof;
- our own DKIM verification, aligned with the From domain (``mailgate.dkim``).
A DNS failure is a temporary "unknown", never a pass. This stage never raises.
"""

from __future__ import annotations

import logging
from functools import lru_cache

import authres
from publicsuffixlist import PublicSuffixList

from mailgate.config import AuthSettings
from mailgate.values import AuthResult, ParsedMail

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """``mail.shop.co.uk`` → ``shop.co.uk`` (the registrable domain, by the public suffix list)."""
    domain = domain.lower().rstrip(".")
    return _suffixes().privatesuffix(domain) or domain


def is_aligned(signing_domain: str, from_domain: str, *, strict: bool = False) -> bool:
    """DMARC identifier alignment of a DKIM ``d=`` with the From domain (RFC 7489 §3.1)."""
    a, b = signing_domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if strict:
        return a == b
    return organizational_domain(a) == organizational_domain(b)


def from_domain(mail: ParsedMail) -> str | None:
    if mail.from_address is None or "@" not in mail.from_address:
        return None
    return mail.from_address.rpartition("@")[2]


def authenticate(raw: bytes, mail: ParsedMail, policy: AuthSettings) -> AuthResult:
    """The authentication verdict for ``mail``'s From domain."""
    domain = from_domain(mail)
    if domain is None or mail.from_header_count != 1:
        return AuthResult(reason="no single, readable From address")
    trusted = trusted_results(mail, policy.trusted_authserv_ids, domain)
    if trusted is not None:
        return trusted
    return AuthResult(reason="no trusted Authentication-Results")


def trusted_results(
    mail: ParsedMail, trusted_ids: tuple[str, ...], domain: str
) -> AuthResult | None:
    """The verdict of the topmost Authentication-Results header from a trusted host."""
    trusted = {t.lower() for t in trusted_ids}
    if not trusted:
        return None
    for value in mail.header_all("Authentication-Results"):
        try:
            header = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {value}")
        except Exception as exc:  # authres raises a family of its own errors on bad syntax
            log.info("unreadable Authentication-Results ignored: %s", exc)
            continue
        if str(header.authserv_id).lower() not in trusted:
            continue
        return _verdict(header, domain)
    return None


def _verdict(header: authres.AuthenticationResultsHeader, domain: str) -> AuthResult:
    dkim = dmarc = "none"
    verified: str | None = None
    for result in header.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        props = {(p.type, p.name): str(p.value).lower() for p in result.properties}
        if method == "dmarc":
            dmarc = outcome
            if outcome == "pass" and props.get(("header", "from"), domain) == domain:
                verified = domain
        elif method == "dkim":
            if dkim != "pass":
                dkim = outcome
            signer = props.get(("header", "d")) or props.get(("header", "i"), "").lstrip("@")
            if outcome == "pass" and signer and is_aligned(signer.split("@")[-1], domain):
                dkim = "pass"
                verified = verified or domain
    source = "trusted_mta" if verified else "none"
    reason = f"Authentication-Results from {header.authserv_id}"
    return AuthResult(
        verified_domain=verified, dkim=dkim, dmarc=dmarc, source=source, reason=reason
    )
