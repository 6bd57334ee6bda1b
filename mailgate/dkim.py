"""Stage 5a helper: our own DKIM verification, every signature, aligned with the From domain.

dkimpy verifies one signature per call (the first, unless told otherwise) and honours
``l=`` body lengths. Mail often carries several signatures (a mailing service's, then the
shop's), so each signature aligned with the From domain is verified in turn until one
passes; unaligned ones prove nothing about the From domain and are not even looked up.
A signature whose ``l=`` leaves part of the body unsigned passes only for the signed part:
``restrict_to_signed`` gives the mail as the signature covers it, so text an attacker
appended is never shown as verified (RFC 6376 §8.2).

DNS answers come from a ``Resolver``; a failed look-up is ``temperror``, never a pass.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace

import dkim
from dkim.canonicalization import CanonicalizationPolicy, InvalidCanonicalizationPolicyError
from dkim.util import InvalidTagValueList, parse_tag_value

from mailgate.alignment import is_aligned
from mailgate.errors import DnsUnavailable
from mailgate.parse import parse_mail
from mailgate.resolver import Resolver
from mailgate.values import ParsedMail

# Each aligned signature costs a DNS look-up; a mail with more is not honest anyway.
MAX_CHECKED = 5
UNSIGNED_TAIL_DEFECT = "unsigned-content-after-dkim-length"

# Fields a mail has once. A second copy added above a signed one is what readers show,
# while the signature covers the other (RFC 6376 §8.15): such a mail proves nothing.
SINGLETON_HEADERS = frozenset(
    {
        b"from",
        b"sender",
        b"reply-to",
        b"to",
        b"cc",
        b"subject",
        b"date",
        b"message-id",
        b"in-reply-to",
        b"references",
        b"mime-version",
        b"content-type",
        b"content-transfer-encoding",
    }
)

# dkimpy logs key problems at ERROR level; they are ordinary in mail from strangers and
# already reported in our verdict, so its log goes nowhere.
_LIBRARY_LOG = logging.getLogger("mailgate.dkim.dkimpy")
_LIBRARY_LOG.propagate = False
_LIBRARY_LOG.addHandler(logging.NullHandler())
_WSP_RUN = re.compile(rb"[\t ]+")


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One DKIM-Signature header and what became of it."""

    domain: str
    selector: str
    aligned: bool
    result: str  # pass | fail | temperror | permerror | unaligned (not checked) | skipped
    detail: str = ""
    body_length: int | None = None  # l=, when it leaves part of the body unsigned
    relaxed_body: bool = False

    def describe(self) -> str:
        text = f"d={self.domain} s={self.selector}: {self.result}"
        if self.body_length is not None:
            text += f" (l={self.body_length}: body only partly signed)"
        return text + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True, slots=True)
class DkimVerdict:
    result: str  # for the aligned signatures: pass | fail | temperror | permerror | none
    signatures: tuple[SignatureCheck, ...] = ()
    accepted: SignatureCheck | None = None  # the aligned signature that passed


def verify_signatures(
    raw: bytes, from_domain: str, resolver: Resolver, *, strict: bool, timeout: float = 5.0
) -> DkimVerdict:
    """Verify ``raw``'s signatures aligned with ``from_domain`` until one passes in full.

    dkimpy splits the whole mail into lines as it is given it (about 3.6 times the mail's
    size in memory: 124 MB for a 25 MB attachment), so it is given the headers alone
    first, and the whole mail only when a signature is there to verify.
    """
    try:
        message = dkim.DKIM(_header_block(raw), logger=_LIBRARY_LOG, timeout=timeout)
        signatures = [v for n, v in message.headers if n.lower() == b"dkim-signature"]
        if signatures:
            message = dkim.DKIM(raw, logger=_LIBRARY_LOG, timeout=timeout)
    except dkim.DKIMException as exc:  # a header line dkimpy cannot read
        return DkimVerdict("permerror", (SignatureCheck("", "", False, "permerror", str(exc)),))
    except IndexError:  # dkimpy 1.1's reader, given a folded line before any header field
        detail = "a folded line before the first header field"
        return DkimVerdict("permerror", (SignatureCheck("", "", False, "permerror", detail),))
    duplicated = _duplicated_singletons(message.headers)
    checks: list[SignatureCheck] = []
    accepted: SignatureCheck | None = None
    checked = 0
    for index, value in enumerate(signatures):
        check = _tags_of(value, from_domain, strict)
        if check.result == "" and (accepted is None or accepted.body_length is not None):
            if checked >= MAX_CHECKED:
                check = replace(check, result="skipped", detail="too many signatures")
            else:
                checked += 1
                check = _verify_one(message, index, check, resolver, duplicated)
        elif check.result == "":
            check = replace(check, result="skipped", detail="an earlier signature passed")
        checks.append(check)
        if check.result == "pass" and _covers_more(check, accepted):
            accepted = check
    return DkimVerdict(_overall(checks, accepted), tuple(checks), accepted)


def _header_block(raw: bytes) -> bytes:
    """``raw`` up to the blank line that ends its headers (all of it when there is none):
    dkimpy reads the same header fields from it as from the whole mail."""
    ends = [end for end in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if end != -1]
    return raw[: min(ends) + 1] if ends else raw


def _tags_of(value: bytes, from_domain: str, strict: bool) -> SignatureCheck:
    """The signature's d=, s= and alignment; ``result`` "" means: to be verified."""
    try:
        tags = parse_tag_value(value)
    except InvalidTagValueList as exc:
        return SignatureCheck("", "", False, "permerror", f"unreadable tags: {exc}")
    domain = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
    selector = tags.get(b"s", b"").decode("ascii", "replace").strip()
    if not domain or not selector:
        return SignatureCheck(domain, selector, False, "permerror", "no d= or s=")
    aligned = is_aligned(domain, from_domain, strict=strict)
    return SignatureCheck(domain, selector, aligned, "" if aligned else "unaligned")


def _verify_one(
    message: dkim.DKIM,
    index: int,
    check: SignatureCheck,
    resolver: Resolver,
    duplicated: tuple[str, ...],
) -> SignatureCheck:
    missing: list[str] = []
    try:
        valid = message.verify(idx=index, dnsfunc=_dns_function(resolver, missing))
    except (DnsUnavailable, dkim.DKIMException) as exc:
        return replace(check, result=_result_of(exc), detail=str(exc))
    if missing:
        return replace(check, result="permerror", detail=f"no key published at {missing[0]}")
    if not valid:
        return replace(check, result="fail", detail="signature does not verify")
    if duplicated:
        return replace(check, result="fail", detail=f"repeated {', '.join(duplicated)} header")
    return _with_body_coverage(message, check)


def _result_of(error: Exception) -> str:
    if isinstance(error, DnsUnavailable):
        return "temperror"
    if isinstance(error, dkim.ValidationError):  # body hash mismatch: the body was changed
        return "fail"
    return "permerror"


def _dns_function(resolver: Resolver, missing: list[str]) -> Callable[..., bytes | None]:
    def txt(name: bytes | str, timeout: float = 5.0) -> bytes | None:
        try:
            qname = name.decode("ascii") if isinstance(name, bytes) else name
        except UnicodeDecodeError:
            missing.append(repr(name))
            return None
        records = resolver.txt(qname)
        if not records:
            missing.append(qname)
            return None
        return records[0]

    return txt


def _with_body_coverage(message: dkim.DKIM, check: SignatureCheck) -> SignatureCheck:
    """Note ``l=`` when it stops before the end of the (canonicalised) body."""
    tags = message.signature_fields
    try:
        policy = CanonicalizationPolicy.from_c_value(tags.get(b"c", b"simple/simple"))
    except InvalidCanonicalizationPolicyError:
        return replace(check, result="permerror", detail="bad c= value")
    relaxed = policy.body_algorithm.name == b"relaxed"
    if b"l" not in tags:
        return replace(check, result="pass", relaxed_body=relaxed)
    limit = int(tags[b"l"])
    body = policy.canonicalize_body(message.body)
    if limit >= len(body):
        return replace(check, result="pass", relaxed_body=relaxed)
    return replace(check, result="pass", body_length=limit, relaxed_body=relaxed)


def _covers_more(check: SignatureCheck, accepted: SignatureCheck | None) -> bool:
    """A signature over the whole body beats one over part of it; longer parts beat shorter."""
    if accepted is None:
        return True
    if accepted.body_length is None:
        return False
    return check.body_length is None or check.body_length > accepted.body_length


def _overall(checks: list[SignatureCheck], accepted: SignatureCheck | None) -> str:
    if accepted is not None:
        return "pass"
    results = {c.result for c in checks if c.aligned}
    for result in ("temperror", "fail", "permerror"):
        if result in results:
            return result
    return "none"


def _duplicated_singletons(headers: list[list[bytes]]) -> tuple[str, ...]:
    counts = Counter(name.strip().lower() for name, _ in headers)
    return tuple(
        sorted(
            name.decode("ascii")
            for name, n in counts.items()
            if n > 1 and name in SINGLETON_HEADERS
        )
    )


# --- the signed part of a mail ----------------------------------------------------------


def signed_part(raw: bytes, body_length: int, *, relaxed: bool) -> bytes:
    """``raw`` cut after the last body byte a signature with ``l=body_length`` covers.

    A line the limit falls inside is dropped whole under relaxed canonicalisation (its
    raw bytes cannot be mapped back exactly), so what remains is signed for certain.
    """
    headers, body = dkim.rfc822_parse(raw)
    head = b"".join(bytes(name) + b":" + bytes(value) for name, value in headers)
    text = bytes(body)
    return head + b"\r\n" + text[: _raw_offset(text, body_length, relaxed)]


def _raw_offset(body: bytes, length: int, relaxed: bool) -> int:
    offset = total = 0
    for line in body.split(b"\r\n"):
        canonical = _WSP_RUN.sub(b" ", line).rstrip(b" ") if relaxed else line
        if total + len(canonical) + 2 <= length:
            total += len(canonical) + 2
            offset += len(line) + 2
            continue
        if not relaxed:
            offset += length - total  # simple: the canonical bytes are the raw bytes
        break
    return min(offset, len(body))


def restrict_to_signed(
    raw: bytes, mail: ParsedMail, body_length: int, *, relaxed: bool
) -> ParsedMail:
    """``mail`` as far as its accepted signature covers it: text, reply and attachments
    come from the signed part only; identity and digest stay those of the whole mail."""
    signed = parse_mail(signed_part(raw, body_length, relaxed=relaxed))
    return replace(
        signed,
        content_digest=mail.content_digest,
        defects=tuple(dict.fromkeys((*mail.defects, UNSIGNED_TAIL_DEFECT))),
    )
