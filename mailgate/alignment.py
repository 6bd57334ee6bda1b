"""Stage 5a helper: DMARC identifier alignment (RFC 7489 §3.1) by the public suffix list.

Relaxed alignment compares organisational domains (``mail.shop.co.uk`` and ``shop.co.uk``
align; ``shop.co.uk.evil.example`` does not); strict alignment wants the same name.
"""

from __future__ import annotations

from functools import lru_cache

from publicsuffixlist import PublicSuffixList


@lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    return PublicSuffixList()


def load_suffix_list() -> None:
    """Read the public suffix list now (0.1 s) rather than with the first mail."""
    _suffixes()


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
