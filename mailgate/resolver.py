"""DNS for stage 5a (authenticate): TXT look-ups for DKIM keys and DMARC records.

``Resolver`` is the seam: production uses ``DnsResolver`` (dnspython, through the server in
``[auth] dns_resolver`` or the system's), stage tests hand in a record table. An answer is
a tuple of TXT records — empty when the name has none — and anything that is not an
answer (timeout, SERVFAIL, no configuration) raises ``DnsUnavailable``: the caller must
read it as "unknown for now", never as "no record".

``DnsResolver`` keeps answers for their TTL, in a table of its own in front of dnspython
(see ``AnswerCache``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import dns.exception
import dns.rdataclass
import dns.rdatatype
import dns.resolver

from mailgate.errors import ConfigError, DnsUnavailable

DNS_PORT = 53
CACHED_NAMES = 4096  # DKIM keys and DMARC policies of this many names are kept at most


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


class AnswerCache:
    """Answers (records, or none) by name until they expire; thread-safe, bounded.

    dnspython's own cache builds a whole ``Resolution`` (a parsed name, a query's worth of
    objects) to find a cached answer: 28 us a look-up, two look-ups for most mails (the
    From domain's DMARC record and its organisational domain's). Here a hit is a dict
    look-up. Expiry is dnspython's: the answer's TTL (the smallest in its chain), the
    SOA's negative TTL for no such name or no record, 300 s when a negative answer has
    no SOA; failures are never kept. When full, the expired go first, then the oldest.
    """

    def __init__(
        self, size: int = CACHED_NAMES, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._size = size
        self._clock = clock
        self._answers: dict[str, tuple[float, tuple[bytes, ...]]] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> tuple[bytes, ...] | None:
        """The answer kept for ``name``, None when there is none or it has expired."""
        kept = self._answers.get(name)  # one dict read: safe without the lock
        if kept is None or kept[0] <= self._clock():
            return None
        return kept[1]

    def put(self, name: str, records: tuple[bytes, ...], ttl: float) -> None:
        """Keep ``records`` as the answer for ``name`` for ``ttl`` seconds from now."""
        expires = self._clock() + ttl
        with self._lock:
            self._answers.pop(name, None)  # re-inserted last: the newest
            if len(self._answers) >= self._size:
                self._make_room()
            self._answers[name] = (expires, records)

    def _make_room(self) -> None:
        now = self._clock()
        for name in [n for n, (expires, _) in self._answers.items() if expires <= now]:
            del self._answers[name]
        while len(self._answers) >= self._size:
            del self._answers[next(iter(self._answers))]  # dicts keep insertion order


class DnsResolver:
    """dnspython, asking one configured server (``host:port``) or the system's resolvers."""

    def __init__(
        self,
        server: str | None,
        *,
        timeout: float = 5.0,
        cache: AnswerCache | None = None,
    ) -> None:
        self._server = parse_server(server) if server else None
        self._timeout = timeout
        self._resolver: dns.resolver.Resolver | None = None
        # Keys and DMARC policies change rarely: answers are reused for their TTL.
        self._cache = cache if cache is not None else AnswerCache()

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
            # Ours is in front; dnspython's reckons when each answer expires (and it is
            # where the expiry of a "no such name" can be read without parsing it again).
            resolver.cache = dns.resolver.LRUCache(CACHED_NAMES)
            self._resolver = resolver
        return self._resolver

    def txt(self, name: str) -> tuple[bytes, ...]:
        records = self._cache.get(name)
        if records is None:
            records, ttl = self._ask(name)
            self._cache.put(name, records, ttl)
        return records

    def _ask(self, name: str) -> tuple[tuple[bytes, ...], float]:
        """The server's answer and its TTL in seconds; raises ``DnsUnavailable``."""
        resolver = self._get()
        try:
            answer = resolver.resolve(name, "TXT", raise_on_no_answer=False, search=False)
        except dns.resolver.NXDOMAIN as exc:
            return (), _negative_ttl(exc, resolver)
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise DnsUnavailable(name, type(exc).__name__) from exc
        except dns.exception.DNSException as exc:
            raise DnsUnavailable(name, f"{type(exc).__name__}: {exc}") from exc
        ttl = answer.expiration - time.time()  # dnspython's clock; maybe from its cache
        if answer.rrset is None:
            return (), ttl
        return tuple(b"".join(record.strings) for record in answer.rrset), ttl


def _negative_ttl(nxdomain: dns.resolver.NXDOMAIN, resolver: dns.resolver.Resolver) -> float:
    """How long "no such name" is kept: as long as dnspython's cache keeps it (the SOA's
    negative TTL, or 300 s without one); 0 when it is not there."""
    names = nxdomain.qnames()  # type: ignore[no-untyped-call]
    key = (names[0], dns.rdatatype.ANY, dns.rdataclass.IN)  # where dnspython keeps it
    kept = resolver.cache.get(key) if resolver.cache else None
    return 0.0 if kept is None else kept.expiration - time.time()
