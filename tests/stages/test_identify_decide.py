"""Stages 5 and the decision: who wrote, and what becomes of the mail."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from factories import parsed_mail

from mailgate.auth import authenticate, is_aligned, organizational_domain
from mailgate.config import AuthSettings
from mailgate.decide import AgentReply, NewTicket, Reply, Suspend, decide
from mailgate.from_check import from_problem
from mailgate.identify import identify
from mailgate.values import (
    AuthResult,
    Instructions,
    ScreenResult,
    Sender,
    SenderKind,
    ThreadDecision,
    ThreadedBy,
    Verdict,
)
from store.lookups import AgentRef, ShopUserRef

PASS = AuthResult(verified_domain="shop.example", dkim="pass", source="dkim")


@dataclass
class Directory:
    def agent(self, email: str) -> AgentRef | None:
        return AgentRef(1, email, "Maria", ()) if email == "maria@support.example" else None

    def shop_user(self, email: str) -> ShopUserRef | None:
        return ShopUserRef(2, email, "Ana", 5, "ro") if email == "ana@shop.example" else None


def test_registered_and_authenticated_user_is_verified() -> None:
    sender = identify(parsed_mail(), PASS, Directory())
    assert (sender.kind, sender.shop_id, sender.verified, sender.verified_by) == (
        SenderKind.SHOP_USER,
        5,
        True,
        "dkim",
    )


def test_registered_but_unauthenticated_user_is_not_verified() -> None:
    sender = identify(parsed_mail(), AuthResult(), Directory())
    assert sender.kind is SenderKind.SHOP_USER and not sender.verified


def test_authentication_for_another_domain_does_not_verify() -> None:
    other = AuthResult(verified_domain="evil.example", dkim="pass", source="dkim")
    assert not identify(parsed_mail(), other, Directory()).verified


def test_two_from_headers_never_match_a_user() -> None:
    sender = identify(parsed_mail(from_header_count=2), PASS, Directory())
    assert sender.kind is SenderKind.STRANGER and not sender.verified


def test_authenticated_agent_is_recognised() -> None:
    auth = AuthResult(verified_domain="support.example", dkim="pass", source="dkim")
    sender = identify(parsed_mail(from_address="maria@support.example"), auth, Directory())
    assert (sender.kind, sender.agent_id, sender.verified) == (SenderKind.AGENT, 1, True)


def test_unauthenticated_mail_from_an_agent_address_is_a_strangers() -> None:
    sender = identify(parsed_mail(from_address="maria@support.example"), AuthResult(), Directory())
    assert sender.kind is SenderKind.STRANGER and not sender.verified


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"from_header_count": 2}, "2 From headers"),
        ({"from_address": "=?utf-8?q?ana?=@shop.example"}, "encoded word"),
        ({"defects": ("address-header-ambiguous", "from-repaired")}, "repaired"),
    ],
)
def test_a_from_that_proves_less_than_nothing_is_never_matched(
    changes: dict[str, object], why: str
) -> None:
    mail = parsed_mail(**changes)
    problem = from_problem(mail)
    assert problem is not None and why in problem
    sender = identify(mail, PASS, Directory())
    assert sender.kind is SenderKind.STRANGER and not sender.verified
    assert authenticate(b"", mail, AuthSettings(), None).verified_domain is None


NEW = ThreadDecision(None, ThreadedBy.NEW, "")
IN_7 = ThreadDecision(7, ThreadedBy.TAG, "tag")
OK = ScreenResult(Verdict.OK)
ANA = Sender(SenderKind.SHOP_USER, "ana@shop.example", shop_id=5)
MARIA = Sender(SenderKind.AGENT, "maria@support.example", agent_id=1, verified=True)


def test_decisions() -> None:
    none = Instructions()
    assert decide(ScreenResult(Verdict.AUTO_REPLY, "x"), ANA, IN_7, none) == Suspend(
        "auto_reply", "x"
    )
    assert decide(OK, Sender(SenderKind.STRANGER, None), NEW, none).reason == "unusable_sender"
    assert decide(OK, ANA, IN_7, none) == Reply(7, IN_7)
    assert decide(OK, MARIA, IN_7, none) == AgentReply(7, IN_7)
    assert decide(OK, ANA, NEW, none) == NewTicket(NEW)


def test_organizational_domain_and_alignment() -> None:
    assert organizational_domain("mail.shop.co.uk") == "shop.co.uk"
    assert is_aligned("mail.magazin.ro", "magazin.ro")
    assert not is_aligned("mail.magazin.ro", "magazin.ro", strict=True)
    assert not is_aligned("magazin.ro.evil.example", "magazin.ro")


AR_HEADERS = (
    (
        "Authentication-Results",
        "mx.platform.example; dkim=pass header.d=shop.example; dmarc=pass header.from=shop.example",
    ),
)


def test_trusted_authentication_results_verify() -> None:
    mail = parsed_mail(headers=AR_HEADERS)
    result = authenticate(
        b"", mail, AuthSettings(trusted_authserv_ids=("mx.platform.example",)), None
    )
    assert (result.verified_domain, result.source, result.dmarc) == (
        "shop.example",
        "trusted_mta",
        "pass",
    )


def test_untrusted_authentication_results_are_ignored() -> None:
    mail = parsed_mail(headers=AR_HEADERS)
    result = authenticate(b"", mail, AuthSettings(trusted_authserv_ids=("mx.other.example",)), None)
    assert result.verified_domain is None and result.source == "none"
