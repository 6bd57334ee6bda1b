"""Stage 5a, authenticate: is this mail really from its From domain?

Two paths, as DESIGN.md defines a verified sender:
- ``Authentication-Results`` added by our own front MTA — trusted ONLY when it is the
  topmost such header and its authserv-id is listed in ``[auth] trusted_authserv_ids``.
  The front MTA prepends its own header, so every one below it came with the mail from
  outside, whatever id it claims; others are ignored and never shown as proof. A mail
  whose DKIM signatures use ``l=`` is verified by us instead: the MTA's verdict does not
  say how much of the body was signed.
- our own DKIM verification (``mailgate.dkim``), aligned with the From domain — relaxed
  by organisational domain, strict where the domain's DMARC record says ``adkim=s``.
A DNS failure is a temporary "unknown", never a pass. This stage never raises.
"""

from __future__ import annotations

import logging
import re

import authres

from mailgate.alignment import is_aligned, organizational_domain
from mailgate.config import AuthSettings
from mailgate.dkim import DkimVerdict, verify_signatures
from mailgate.dmarc import DmarcPolicy, find_policy
from mailgate.errors import DnsUnavailable
from mailgate.from_check import from_problem
from mailgate.resolver import Resolver
from mailgate.values import AuthResult, ParsedMail

__all__ = [
    "authenticate",
    "from_domain",
    "is_aligned",
    "organizational_domain",
    "trusted_results",
]

log = logging.getLogger(__name__)
_LENGTH_TAG = re.compile(r"(?:^|;)\s*l\s*=", re.IGNORECASE)


def from_domain(mail: ParsedMail) -> str | None:
    if mail.from_address is None or "@" not in mail.from_address:
        return None
    return mail.from_address.rpartition("@")[2].rstrip(".")


def authenticate(
    raw: bytes, mail: ParsedMail, policy: AuthSettings, resolver: Resolver | None
) -> AuthResult:
    """The authentication verdict for ``mail``'s From domain.

    Without a ``resolver`` only a trusted ``Authentication-Results`` header can verify.
    """
    domain = from_domain(mail)
    problem = from_problem(mail)
    if domain is None or problem is not None:
        return AuthResult(reason=problem or "no readable From domain")
    strictness = _Strictness(domain, resolver)
    trusted = None
    if not _has_length_limited_signature(mail):
        trusted = trusted_results(mail, policy.trusted_authserv_ids, domain, strictness)
        if trusted is not None and trusted.authenticated:
            return trusted
    if resolver is None:
        unknown = "no DNS resolver: DKIM not checked"
        return trusted or AuthResult(dmarc="temperror", reason=unknown)
    own = _own_verification(raw, domain, resolver, strictness, policy.dns_timeout)
    if trusted is not None and not own.authenticated:
        # Our front MTA's DMARC failure stands even where our own look-up found no policy
        # (it may have read the record with a resolver we cannot reach).
        return AuthResult(
            dkim=own.dkim,
            dmarc="fail" if trusted.dmarc == "fail" else own.dmarc,
            reason=f"{own.reason}; {trusted.reason}",
            signatures=own.signatures,
        )
    return own


class _Strictness:
    """The domain's DMARC policy, looked up once and only when needed."""

    def __init__(self, domain: str, resolver: Resolver | None) -> None:
        self.domain = domain
        self.resolver = resolver
        self.looked_up = False
        self.policy: DmarcPolicy | None = None
        self.failure: str | None = None

    def lookup(self) -> None:
        if self.looked_up:
            return
        self.looked_up = True
        if self.resolver is None:
            return
        try:
            self.policy = find_policy(self.domain, self.resolver)
        except DnsUnavailable as exc:
            self.failure = str(exc)

    @property
    def strict(self) -> bool:
        """``adkim=s``; when the record cannot be read, strict (the safe reading)."""
        self.lookup()
        return self.policy.strict_dkim if self.policy else self.failure is not None


def _own_verification(
    raw: bytes, domain: str, resolver: Resolver, strictness: _Strictness, timeout: float
) -> AuthResult:
    strict = strictness.strict
    verdict = verify_signatures(raw, domain, resolver, strict=strict, timeout=timeout)
    signatures = tuple(s.describe() for s in verdict.signatures)
    accepted = verdict.accepted
    if accepted is not None:
        dmarc = "temperror" if strictness.failure else ("pass" if strictness.policy else "none")
        return AuthResult(
            verified_domain=domain,
            dkim="pass",
            dmarc=dmarc,
            source="dkim",
            reason=f"DKIM signature d={accepted.domain} s={accepted.selector} verified"
            + (" (strict alignment)" if strict else ""),
            signatures=signatures,
            signed_body_length=accepted.body_length,
            relaxed_body=accepted.relaxed_body,
        )
    dmarc = "temperror" if strictness.failure else ("fail" if strictness.policy else "none")
    return AuthResult(
        dkim=verdict.result,
        dmarc=dmarc,
        reason=_failure_reason(verdict, domain, strictness),
        signatures=signatures,
    )


def _failure_reason(verdict: DkimVerdict, domain: str, strictness: _Strictness) -> str:
    if strictness.failure:
        return f"DMARC look-up failed, try again later: {strictness.failure}"
    aligned = [s for s in verdict.signatures if s.aligned]
    if not aligned:
        return f"no DKIM signature aligned with {domain}"
    return "; ".join(s.describe() for s in aligned)


def _has_length_limited_signature(mail: ParsedMail) -> bool:
    return any(_LENGTH_TAG.search(value) for value in mail.header_all("DKIM-Signature"))


def trusted_results(
    mail: ParsedMail,
    trusted_ids: tuple[str, ...],
    domain: str,
    strictness: _Strictness | None = None,
) -> AuthResult | None:
    """The verdict of the topmost Authentication-Results header, if a trusted host wrote it.

    Only the topmost header counts: our front MTA prepends its own, so anything below it
    came with the mail from outside — including copies that claim our MTA's id. A mail
    that reached us without passing the front MTA has no header of its own on top: that
    is why the listener must be reachable only through that MTA (README, "Trust").
    """
    trusted = {t.lower() for t in trusted_ids}
    values = mail.header_all("Authentication-Results")
    if not trusted or not values:
        return None
    try:
        header = authres.AuthenticationResultsHeader.parse(f"Authentication-Results: {values[0]}")
    except Exception as exc:  # authres raises a family of its own errors on bad syntax
        log.info("unreadable Authentication-Results ignored: %s", exc)
        return None
    if str(header.authserv_id).lower() not in trusted:
        return None
    return _verdict(header, domain, strictness)


def _verdict(
    header: authres.AuthenticationResultsHeader, domain: str, strictness: _Strictness | None
) -> AuthResult:
    dmarc = "none"
    dkim_outcomes: list[str] = []
    aligned_pass = False
    for result in header.results:
        method, outcome = str(result.method).lower(), str(result.result).lower()
        props = {(p.type, p.name): str(p.value).lower() for p in result.properties}
        if method == "dmarc":
            # The MTA's DMARC result decides when there is one: it has read adkim= itself.
            if props.get(("header", "from"), domain) == domain:
                dmarc = outcome
        elif method == "dkim":
            signer = props.get(("header", "d")) or props.get(("header", "i"), "").lstrip("@")
            signer = signer.split("@")[-1]
            aligned = bool(signer) and is_aligned(
                signer, domain, strict=strictness.strict if strictness else False
            )
            if aligned or outcome != "pass":
                dkim_outcomes.append(outcome)
            aligned_pass = aligned_pass or (aligned and outcome == "pass")
    verified = dmarc == "pass" if dmarc != "none" else aligned_pass
    dkim = "pass" if aligned_pass else (dkim_outcomes[0] if dkim_outcomes else "none")
    return AuthResult(
        verified_domain=domain if verified else None,
        dkim=dkim,
        dmarc=dmarc,
        source="trusted_mta" if verified else "none",
        reason=f"Authentication-Results from {header.authserv_id}: dkim={dkim} dmarc={dmarc}",
    )
