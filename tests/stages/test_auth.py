"""Stage 5a: DKIM verified by us (every aligned signature, l= honoured), DMARC alignment,
and which Authentication-Results header is believed. Keys are made in the test run; DNS
is an in-memory record table."""

from __future__ import annotations

import pytest
from dkim_support import TableResolver, shared_key, sign
from mailgate_testing import raw_mail

from mailgate.auth import authenticate
from mailgate.config import AuthSettings
from mailgate.dkim import UNSIGNED_TAIL_DEFECT, restrict_to_signed
from mailgate.dmarc import find_policy, parse_tags
from mailgate.errors import ConfigError, DnsUnavailable
from mailgate.parse import parse_mail
from mailgate.resolver import DnsResolver, parse_server
from mailgate.values import AuthResult

SHOP = "magazin.example"
KEY = shared_key(SHOP)
OTHER = shared_key("other")
POLICY = AuthSettings()


@pytest.fixture
def dns() -> TableResolver:
    """Keys for magazin.example (selector mail) and evil.example; DMARC p=reject for the shop."""
    table = TableResolver()
    table.publish(f"mail._domainkey.{SHOP}", KEY.record())
    table.publish("mail._domainkey.mail.magazin.example", KEY.record())
    table.publish("mail._domainkey.evil.example", OTHER.record())
    table.publish(f"_dmarc.{SHOP}", "v=DMARC1; p=reject")
    return table


def mail_from_shop(**changes: object) -> bytes:
    values: dict[str, object] = {
        "sender": f"Ana <ana@{SHOP}>",
        "subject": "Plata",
        "body": "Bună ziua,\nvă rog schimbați IBAN-ul.\nAna\n",
    }
    values.update(changes)
    return raw_mail(**values)  # type: ignore[arg-type]


def check(raw: bytes, dns: TableResolver, policy: AuthSettings = POLICY) -> AuthResult:
    return authenticate(raw, parse_mail(raw), policy, dns)


def test_aligned_signature_verifies_the_from_domain(dns: TableResolver) -> None:
    result = check(sign(mail_from_shop(), domain=SHOP, key=KEY), dns)
    assert (result.verified_domain, result.dkim, result.dmarc, result.source) == (
        SHOP,
        "pass",
        "pass",
        "dkim",
    )
    assert result.signed_body_length is None


def test_a_changed_body_fails(dns: TableResolver) -> None:
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY)
    tampered = signed.replace(b"IBAN", b"IBAM")
    result = check(tampered, dns)
    assert (result.verified_domain, result.dkim, result.dmarc) == (None, "fail", "fail")
    assert "body hash" in result.reason


def test_a_changed_subject_fails(dns: TableResolver) -> None:
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY)
    result = check(signed.replace(b"Subject: Plata", b"Subject: [#2] Plata"), dns)
    assert result.verified_domain is None and result.dkim == "fail"


def test_a_signature_of_another_domain_proves_nothing_and_is_not_looked_up(
    dns: TableResolver,
) -> None:
    result = check(sign(mail_from_shop(), domain="evil.example", key=OTHER), dns)
    assert (result.verified_domain, result.dkim) == (None, "none")
    assert "d=evil.example s=mail: unaligned" in result.signatures
    assert "mail._domainkey.evil.example" not in dns.queries


def test_a_subdomain_signature_aligns_relaxed(dns: TableResolver) -> None:
    result = check(sign(mail_from_shop(), domain="mail.magazin.example", key=KEY), dns)
    assert result.verified_domain == SHOP


def test_strict_alignment_refuses_a_subdomain(dns: TableResolver) -> None:
    dns.records[f"_dmarc.{SHOP}"] = [b"v=DMARC1; p=reject; adkim=s"]
    result = check(sign(mail_from_shop(), domain="mail.magazin.example", key=KEY), dns)
    assert result.verified_domain is None
    assert check(sign(mail_from_shop(), domain=SHOP, key=KEY), dns).verified_domain == SHOP


def test_a_lookalike_parent_domain_is_not_aligned(dns: TableResolver) -> None:
    dns.publish("mail._domainkey.magazin.example.evil.example", OTHER.record())
    raw = sign(mail_from_shop(), domain="magazin.example.evil.example", key=OTHER)
    assert check(raw, dns).verified_domain is None


def test_every_aligned_signature_is_tried_not_only_the_first(dns: TableResolver) -> None:
    """dkimpy verifies the topmost signature only; a mailing service's comes first."""
    shop_signed = sign(mail_from_shop(), domain=SHOP, key=KEY)
    both = sign(shop_signed, domain="evil.example", key=OTHER)  # now on top
    assert check(both, dns).verified_domain == SHOP


def test_a_broken_aligned_signature_does_not_hide_a_good_one(dns: TableResolver) -> None:
    good = sign(mail_from_shop(), domain=SHOP, key=KEY)
    broken = sign(good, domain=SHOP, key=OTHER)  # on top, but signed with the wrong key
    result = check(broken, dns)
    assert result.verified_domain == SHOP
    assert [s.split(":")[1].split()[0] for s in result.signatures] == ["fail", "pass"]


def test_a_key_look_up_failure_is_temporary_never_a_pass(dns: TableResolver) -> None:
    dns.failing.add(f"mail._domainkey.{SHOP}")
    result = check(sign(mail_from_shop(), domain=SHOP, key=KEY), dns)
    assert (result.verified_domain, result.dkim) == (None, "temperror")
    assert not result.publishes_no_authentication


def test_a_dmarc_look_up_failure_is_temporary_and_alignment_strict(dns: TableResolver) -> None:
    dns.failing.add(f"_dmarc.{SHOP}")
    exact = check(sign(mail_from_shop(), domain=SHOP, key=KEY), dns)
    assert (exact.verified_domain, exact.dmarc) == (SHOP, "temperror")
    sub = check(sign(mail_from_shop(), domain="mail.magazin.example", key=KEY), dns)
    assert (sub.verified_domain, sub.dmarc) == (None, "temperror")


def test_a_key_that_is_not_published_is_a_permanent_error(dns: TableResolver) -> None:
    result = check(sign(mail_from_shop(), domain=SHOP, key=KEY, selector="gone"), dns)
    assert (result.verified_domain, result.dkim) == (None, "permerror")


def test_a_domain_without_policy_or_signature_publishes_no_authentication() -> None:
    result = check(raw_mail(sender="Ion <ion@nodkim.example>"), TableResolver())
    assert (result.dkim, result.dmarc, result.publishes_no_authentication) == (
        "none",
        "none",
        True,
    )


def test_text_appended_after_l_is_not_the_senders(dns: TableResolver) -> None:
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY, length=True)
    forged = signed + b"PS: the new IBAN is RO49EVIL0000000000000000\n"
    result = check(forged, dns)
    assert result.verified_domain == SHOP and result.signed_body_length is not None
    mail = restrict_to_signed(forged, parse_mail(forged), result.signed_body_length, relaxed=False)
    assert "EVIL" not in mail.body_text and "schimbați IBAN" in mail.body_text
    assert UNSIGNED_TAIL_DEFECT in mail.defects
    assert mail.content_digest == parse_mail(forged).content_digest


def test_appended_text_with_relaxed_body_canonicalisation(dns: TableResolver) -> None:
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY, length=True, relaxed_body=True)
    forged = signed + b"PS:   the new IBAN   is RO49EVIL\n"
    result = check(forged, dns)
    assert result.signed_body_length is not None and result.relaxed_body
    mail = restrict_to_signed(forged, parse_mail(forged), result.signed_body_length, relaxed=True)
    assert "EVIL" not in mail.body_text and "Ana" in mail.body_text


def test_l_covering_the_whole_body_is_a_plain_pass(dns: TableResolver) -> None:
    result = check(sign(mail_from_shop(), domain=SHOP, key=KEY, length=True), dns)
    assert result.verified_domain == SHOP and result.signed_body_length is None


def test_a_second_subject_added_above_a_signed_one_fails(dns: TableResolver) -> None:
    """Readers show the first Subject; the signature covers the last (RFC 6376 §8.15)."""
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY)
    result = check(b"Subject: [#2] urgent\r\n" + signed, dns)
    assert result.verified_domain is None and "repeated subject" in result.reason


# --- Authentication-Results -----------------------------------------------------------------

TRUSTED = AuthSettings(trusted_authserv_ids=("mx.mailgate.example",))
PASS_AR = f"mx.mailgate.example; dkim=pass header.d={SHOP}; dmarc=pass header.from={SHOP}"


def with_results(*values: str, raw: bytes | None = None) -> bytes:
    head = b"".join(f"Authentication-Results: {v}\r\n".encode() for v in values)
    return head + (raw or mail_from_shop())


def test_the_topmost_header_of_a_trusted_host_verifies(dns: TableResolver) -> None:
    result = check(with_results(PASS_AR), dns, TRUSTED)
    assert (result.verified_domain, result.source) == (SHOP, "trusted_mta")


def test_a_trusted_id_below_another_header_came_with_the_mail(dns: TableResolver) -> None:
    """Our MTA prepends its header: one claiming its id further down was forged."""
    top = f"mx.mailgate.example; dkim=none; dmarc=fail header.from={SHOP}"
    result = check(with_results(top, PASS_AR), dns, TRUSTED)
    assert result.verified_domain is None
    untrusted_top = "mx.elsewhere.example; dkim=none"
    assert check(with_results(untrusted_top, PASS_AR), dns, TRUSTED).verified_domain is None


def test_an_untrusted_host_is_ignored(dns: TableResolver) -> None:
    forged = PASS_AR.replace("mx.mailgate.example", "mx.evil.example")
    assert check(with_results(forged), dns, TRUSTED).verified_domain is None


def test_dmarc_fail_from_the_trusted_mta_outweighs_its_dkim_pass(dns: TableResolver) -> None:
    header = f"mx.mailgate.example; dkim=pass header.d={SHOP}; dmarc=fail header.from={SHOP}"
    assert check(with_results(header), dns, TRUSTED).verified_domain is None


def test_a_pass_for_another_from_domain_does_not_verify(dns: TableResolver) -> None:
    header = (
        "mx.mailgate.example; dkim=pass header.d=evil.example; dmarc=pass header.from=evil.example"
    )
    assert check(with_results(header), dns, TRUSTED).verified_domain is None


def test_a_mail_signed_with_l_is_verified_by_us_not_by_the_mta(dns: TableResolver) -> None:
    signed = sign(mail_from_shop(), domain=SHOP, key=KEY, length=True)
    result = check(with_results(PASS_AR, raw=signed + b"appended\n"), dns, TRUSTED)
    assert result.source == "dkim" and result.signed_body_length is not None


# --- DMARC and the resolver -------------------------------------------------------------------


def test_dmarc_policy_falls_back_to_the_organisational_domain() -> None:
    table = TableResolver()
    table.publish("_dmarc.magazin.example", "v=DMARC1; p=quarantine; adkim=s")
    policy = find_policy("mail.magazin.example", table)
    assert policy is not None and (policy.domain, policy.policy, policy.strict_dkim) == (
        "magazin.example",
        "quarantine",
        True,
    )
    assert table.queries == ["_dmarc.mail.magazin.example", "_dmarc.magazin.example"]


def test_two_dmarc_records_mean_no_policy() -> None:
    table = TableResolver()
    table.publish("_dmarc.magazin.example", "v=DMARC1; p=reject")
    table.publish("_dmarc.magazin.example", "v=DMARC1; p=none")
    assert find_policy("magazin.example", table) is None
    assert parse_tags(" v=DMARC1 ;p=reject; ; adkim = s") == {
        "v": "DMARC1",
        "p": "reject",
        "adkim": "s",
    }


def test_dns_resolver_talks_to_a_real_server(loopback_dns) -> None:  # type: ignore[no-untyped-def]
    """The production resolver against the run's UDP server on 127.0.0.1."""
    loopback_dns.publish("_dmarc.resolver-test.example", "v=DMARC1; p=none")
    loopback_dns.fail("_dmarc.down.example")
    try:
        resolver = DnsResolver(loopback_dns.address, timeout=2.0)
        assert resolver.txt("_dmarc.resolver-test.example") == (b"v=DMARC1; p=none",)
        assert resolver.txt("_dmarc.absent.example") == ()
        with pytest.raises(DnsUnavailable):
            resolver.txt("_dmarc.down.example")
    finally:
        loopback_dns.reset()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("[::1]:53", ("::1", 53)),
        ("10.0.0.1", ("10.0.0.1", 53)),
    ],
)
def test_dns_resolver_setting(value: str, expected: tuple[str, int]) -> None:
    assert parse_server(value) == expected


def test_bad_dns_resolver_setting_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        parse_server("127.0.0.1:dns")


def test_a_folded_line_before_the_first_header_is_a_permanent_error(dns: TableResolver) -> None:
    """dkimpy's reader fails on a continuation line with no header field before it
    (IndexError): the signature cannot be read, so it is a permanent error, not a crash."""
    raw = b" stray continuation\n" + sign(mail_from_shop(), domain=SHOP, key=KEY)
    result = check(raw, dns)
    assert (result.verified_domain, result.dkim) == (None, "permerror")
