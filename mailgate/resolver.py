"""DNS for stage 5a (authenticate): TXT look-ups for DKIM keys and DMARC records.

``Resolver`` is the seam: production uses ``DnsResolver`` (dnspython, through the server in
``[auth] dns_resolver`` or the system's), stage tests hand in a record table. An answer is
a tuple of TXT records — empty when the name has none — and anything that is not an
answer (timeout, SERVFAIL, no configuration) raises ``DnsUnavailable``: the caller must
read it as "unknown for now", never as "no record".
"""

from __future__ import annotations

from typing import Protocol

import dns.exception
import dns.resolver

from mailgate.errors import ConfigError, DnsUnavailable

DNS_PORT = 53


class Resolver(Protocol):
    def txt(self, name: str) -> tuple[bytes, ...]:
        """The TXT records of ``name`` (each with its strings joined); () when none.

        Raises ``DnsUnavailable`` when no answer could be had.
        """
        ...


def parse_server(value: str) -> tuple[str, int]:
    """``"127.0.0.1:5353"`` → ``("127.0.0.1", 5353)``; ``"[::1]:53"`` and a bare host work too.

    Raises ``ConfigError`` for anything else.
    """
    text = value.strip()
    host, port = text, str(DNS_PORT)
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"bad auth.dns_resolver {value!r}: expected host:port")
    return host, int(port)


class DnsResolver:
    """dnspython, asking one configured server (``host:port``) or the system's resolvers."""

    def __init__(self, server: str | None, *, timeout: float = 5.0) -> None:
        self._server = parse_server(server) if server else None
        self._timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None

    def _get(self) -> dns.resolver.Resolver:
        if self._resolver is None:
            if self._server is None:
                try:
                    resolver = dns.resolver.Resolver()
                except dns.resolver.NoResolverConfiguration as exc:
                    raise DnsUnavailable("(any name)", f"no resolver configured: {exc}") from exc
            else:
                resolver = dns.resolver.Resolver(configure=False)
                resolver.nameservers = [self._server[0]]
                resolver.port = self._server[1]
            resolver.timeout = self._timeout
            resolver.lifetime = self._timeout
            # Keys and DMARC policies change rarely: answers are reused for their TTL.
            resolver.cache = dns.resolver.LRUCache(4096)
            self._resolver = resolver
        return self._resolver

    def txt(self, name: str) -> tuple[bytes, ...]:
        try:
            answer = self._get().resolve(name, "TXT", raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN:
            return ()
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsUnavailable(name, type(exc).__name__) from exc
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(name, f"{type(exc).__name__}: {exc}") from exc
        if answer.rrset is None:
            return ()
        return tuple(b"".join(record.strings) for record in answer.rrset)
