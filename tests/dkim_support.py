"""DKIM for the tests: RSA keys made in the test run (``openssl genrsa``), their DNS
records, and signatures made with dkimpy — the same library the verifier uses."""

from __future__ import annotations

import base64
import subprocess
from dataclasses import dataclass
from functools import cache

import dkim


@dataclass(frozen=True)
class SigningKey:
    private_pem: bytes
    public_b64: str

    def record(self) -> str:
        """The TXT record that publishes this key (``<selector>._domainkey.<domain>``)."""
        return f"v=DKIM1; k=rsa; p={self.public_b64}"


def make_key(bits: int = 1024) -> SigningKey:
    """A fresh RSA key pair (PKCS#1 PEM, as dkimpy reads it)."""
    pem = subprocess.run(
        ["openssl", "genrsa", "-traditional", str(bits)], capture_output=True, check=True
    ).stdout
    public = subprocess.run(
        ["openssl", "rsa", "-pubout", "-outform", "DER"], input=pem, capture_output=True, check=True
    ).stdout
    return SigningKey(pem, base64.b64encode(public).decode("ascii"))


@cache
def shared_key(name: str) -> SigningKey:
    """One key per name for the whole test run (key generation is the slow part)."""
    return make_key()


def sign(
    raw: bytes,
    *,
    domain: str,
    key: SigningKey,
    selector: str = "mail",
    length: bool = False,
    headers: tuple[str, ...] = (
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
    ),
    relaxed_body: bool = False,
) -> bytes:
    """``raw`` with a DKIM-Signature for ``domain`` prepended (``length``: with ``l=``)."""
    canon = (b"relaxed", b"relaxed" if relaxed_body else b"simple")
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key.private_pem,
        include_headers=[h.encode() for h in headers],
        canonicalize=canon,
        length=length,
    )
    return signature + raw


class TableResolver:
    """An in-memory record table for stage tests (``mailgate.resolver.Resolver``)."""

    def __init__(self) -> None:
        self.records: dict[str, list[bytes]] = {}
        self.failing: set[str] = set()
        self.queries: list[str] = []

    def publish(self, name: str, text: str) -> None:
        self.records.setdefault(name.lower(), []).append(text.encode())

    def txt(self, name: str) -> tuple[bytes, ...]:
        from mailgate.errors import DnsUnavailable

        name = name.rstrip(".").lower()
        self.queries.append(name)
        if name in self.failing:
            raise DnsUnavailable(name, "SERVFAIL")
        return tuple(self.records.get(name, ()))
