"""``DnsResolver`` keeps answers for their TTL (``AnswerCache``): the same answers as
asking each time, never a failure kept, never more names than its size."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from dns_server import LoopbackDns

from mailgate.errors import DnsUnavailable
from mailgate.resolver import AnswerCache, DnsResolver

SERVER_TTL = 60  # what tests/dns_server.py gives its records
NXDOMAIN_TTL = 300  # dnspython's for a "no such name" without a SOA, as the server sends
# The TTL left is reckoned on the real clock when the answer comes (dnspython's expiry
# less time.time()): a loaded machine may take a few seconds between the two.
SLACK = 10


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counting_asks(resolver: DnsResolver, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names ``resolver`` asks dnspython about (rather than answering from its cache)."""
    asked: list[str] = []
    ask: Callable[[str], tuple[tuple[bytes, ...], float]] = resolver._ask

    def counted(name: str) -> tuple[tuple[bytes, ...], float]:
        asked.append(name)
        return ask(name)

    monkeypatch.setattr(resolver, "_ask", counted)
    return asked


def test_an_answer_is_kept_for_its_ttl(dns: LoopbackDns, monkeypatch: pytest.MonkeyPatch) -> None:
    dns.publish("_dmarc.kept.example", "v=DMARC1; p=none")
    clock = Clock()
    resolver = DnsResolver(dns.address, timeout=2.0, cache=AnswerCache(clock=clock))
    asked = counting_asks(resolver, monkeypatch)
    assert resolver.txt("_dmarc.kept.example") == (b"v=DMARC1; p=none",)
    clock.now += SERVER_TTL - SLACK
    assert resolver.txt("_dmarc.kept.example") == (b"v=DMARC1; p=none",)
    assert asked == ["_dmarc.kept.example"]
    assert dns.queries.count("_dmarc.kept.example") == 1  # dnspython asked the server once
    clock.now += SLACK + 1
    assert resolver.txt("_dmarc.kept.example") == (b"v=DMARC1; p=none",)
    assert asked == ["_dmarc.kept.example"] * 2


def test_no_such_name_is_kept_for_the_negative_ttl(
    dns: LoopbackDns, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    resolver = DnsResolver(dns.address, timeout=2.0, cache=AnswerCache(clock=clock))
    asked = counting_asks(resolver, monkeypatch)
    assert resolver.txt("_dmarc.absent.example") == ()
    clock.now += NXDOMAIN_TTL - SLACK
    assert resolver.txt("_dmarc.absent.example") == ()
    assert asked == ["_dmarc.absent.example"]
    clock.now += SLACK + 1
    assert resolver.txt("_dmarc.absent.example") == ()
    assert asked == ["_dmarc.absent.example"] * 2


def test_a_failed_look_up_is_never_kept(dns: LoopbackDns, monkeypatch: pytest.MonkeyPatch) -> None:
    dns.fail("_dmarc.down.example")
    resolver = DnsResolver(dns.address, timeout=2.0)
    asked = counting_asks(resolver, monkeypatch)
    for _ in range(2):
        with pytest.raises(DnsUnavailable):
            resolver.txt("_dmarc.down.example")
    assert asked == ["_dmarc.down.example"] * 2
    dns.reset()  # the outage ends: the next look-up gets the answer
    dns.publish("_dmarc.down.example", "v=DMARC1; p=reject")
    assert resolver.txt("_dmarc.down.example") == (b"v=DMARC1; p=reject",)


def test_the_cache_gives_the_answers_of_asking_each_time(dns: LoopbackDns) -> None:
    dns.publish("_dmarc.one.example", "v=DMARC1; p=reject")
    dns.publish("_dmarc.two.example", "v=DMARC1; p=none")
    dns.publish("_dmarc.two.example", "v=spf1 -all")
    dns.publish("sel._domainkey.one.example", "k=rsa; p=" + "A" * 400)  # several strings
    names = [
        "_dmarc.one.example",
        "_dmarc.two.example",
        "sel._domainkey.one.example",
        "_dmarc.none.example",
    ]
    cached = DnsResolver(dns.address, timeout=2.0)
    for _ in range(3):
        for name in names:
            assert cached.txt(name) == DnsResolver(dns.address, timeout=2.0).txt(name)


def test_the_cache_holds_at_most_its_size_expired_answers_going_first() -> None:
    clock = Clock()
    cache = AnswerCache(3, clock=clock)
    cache.put("short", (b"a",), 10)
    cache.put("old", (b"b",), 100)
    cache.put("newer", (), 100)
    clock.now += 20  # "short" has expired
    cache.put("newest", (b"d",), 100)
    assert [cache.get(n) for n in ("short", "old", "newer", "newest")] == [
        None,
        (b"b",),
        (),
        (b"d",),
    ]
    cache.put("fifth", (b"e",), 100)  # none expired: the oldest goes
    assert [cache.get(n) for n in ("old", "newer", "newest", "fifth")] == [
        None,
        (),
        (b"d",),
        (b"e",),
    ]
    assert len(cache._answers) == 3


def test_an_answer_with_no_time_to_live_is_not_kept() -> None:
    cache = AnswerCache(clock=Clock())
    cache.put("zero", (b"a",), 0)
    assert cache.get("zero") is None
