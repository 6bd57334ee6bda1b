"""A real DNS server on loopback for the tests: public DNS is the one thing we fake.

``LoopbackDns`` answers UDP queries on 127.0.0.1 (a free port) from a table the test
fills — TXT records for DKIM keys and DMARC policies — says NXDOMAIN for every other
name, and SERVFAIL for names marked as failing (a DNS outage). Mailgate reaches it the
way it reaches any resolver: ``[auth] dns_resolver = "127.0.0.1:<port>"``.
"""

from __future__ import annotations

import socketserver
import threading

from dnslib import QTYPE, RCODE, RR, TXT, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

_TXT_CHUNK = 255  # one character-string of a TXT record holds at most 255 bytes


class _Table(BaseResolver):  # type: ignore[misc]
    def __init__(self, dns: LoopbackDns) -> None:
        self.dns = dns

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).rstrip(".").lower()
        with self.dns.lock:
            self.dns.queries.append(name)
            if name in self.dns.failing:
                reply.header.rcode = RCODE.SERVFAIL
                return reply
            records = list(self.dns.records.get(name, ()))
        if not records:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.TXT:
            for text in records:
                chunks = [text[i : i + _TXT_CHUNK] for i in range(0, len(text), _TXT_CHUNK)]
                reply.add_answer(RR(request.q.qname, QTYPE.TXT, rdata=TXT(chunks), ttl=60))
        return reply


class _OneThreadUdp(socketserver.UDPServer):
    """Queries answered one after another by the server's own thread. dnslib's default
    server starts a thread for each query: 0.35 ms of CPU a query against 0.19 here, CPU
    that a benchmark's gateway would share its two cores with (bench/README.md)."""

    allow_reuse_address = True


class LoopbackDns:
    """A UDP DNS server on 127.0.0.1; ``address`` is its ``host:port``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[str, list[bytes]] = {}
        self.failing: set[str] = set()
        self.queries: list[str] = []
        self._server = DNSServer(
            _Table(self),
            address="127.0.0.1",
            port=0,
            logger=DNSLogger(logf=lambda _: None),
            server=_OneThreadUdp,
        )
        self._server.start_thread()
        host, port = self._server.server.server_address[:2]
        self.address = f"{host}:{port}"

    def publish(self, name: str, text: str | bytes) -> None:
        """Add a TXT record at ``name`` (several calls: several records)."""
        value = text.encode() if isinstance(text, str) else text
        with self.lock:
            self.records.setdefault(name.rstrip(".").lower(), []).append(value)

    def fail(self, name: str) -> None:
        """Answer SERVFAIL for ``name``: the look-up fails, as in a DNS outage."""
        with self.lock:
            self.failing.add(name.rstrip(".").lower())

    def reset(self) -> None:
        with self.lock:
            self.records.clear()
            self.failing.clear()
            self.queries.clear()

    def stop(self) -> None:
        self._server.stop()
        self._server.server.server_close()  # dnslib's stop() leaves the socket open
