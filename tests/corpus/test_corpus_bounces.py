"""Screen stage on real bounces: every flufl.bounce sample is a BOUNCE, with its recipients.

The samples are GNU Mailman's collection of real non-delivery reports (see
shared/corpus/README.md). Each is read with ``mailgate.parse.parse_mail``, so the bounce
rules are checked against the parser the pipeline really uses.
"""

from __future__ import annotations

import email
import json
import re
from collections.abc import Callable

import pytest
from paths import CORPUS

from mailgate.parse import parse_mail
from mailgate.screen import OwnMail, bounced_message_ids, bounced_recipients, screen
from mailgate.values import Envelope, ParsedMail, Verdict

BOUNCES = CORPUS / "flufl.bounce"
OWN = OwnMail(addresses=("support@example.com",), message_id_domain="mailgate.example.com")
IMPORTED = Envelope()  # read from a file: the envelope sender is unknown

# Other corpus messages that are delivery reports (README, "Using it", check 3).
OTHER_REPORTS = (
    "cpython-test_email/msg_05.txt",
    "cpython-test_email/msg_16.txt",
    "cpython-test_email/msg_25.txt",
    "cpython-test_email/msg_43.txt",
    "mail-parser/mail_malformed_2",
)

# Recipients upstream names that no reading of the message can produce.
IMPOSSIBLE_RECIPIENTS = {
    "yale_01.txt": "Yale's notice names a bare user, 'thomas.dtankengine', and the returned mail "
    "was addressed to @yale.edu; upstream's Yale detector also invents the @cs.yale.edu form "
    "from the notice's advice ('try NAME@cs.yale.edu'), which is a guess, not a failed recipient",
}
MIN_RECIPIENT_SHARE = 0.95

Reader = Callable[[bytes], ParsedMail]
READERS = [pytest.param(parse_mail, id="parse_mail")]


def _expectations() -> dict[str, dict[str, list[object]]]:
    if not BOUNCES.is_dir():
        return {}
    data: dict[str, dict[str, dict[str, list[object]]]] = json.loads(
        (BOUNCES / "expectations.json").read_text(encoding="utf-8")
    )
    return data["files"]


EXPECTATIONS = _expectations()
BOUNCE_FILES = sorted(EXPECTATIONS)
WITH_ADDRESSES = [name for name in BOUNCE_FILES if EXPECTATIONS[name]["all_bounced_addresses"]]

pytestmark = pytest.mark.skipif(not BOUNCES.is_dir(), reason=f"no corpus at {CORPUS}")


def _expected(name: str) -> set[str]:
    return {str(a).lower() for a in EXPECTATIONS[name]["all_bounced_addresses"]}


def _is_delay(name: str) -> bool:
    checks = EXPECTATIONS[name]["checks"]
    return any(isinstance(c, dict) and c.get("kind") == "temporary" for c in checks)


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("name", BOUNCE_FILES)
def test_flufl_bounce_is_bounce(name: str, read: Reader) -> None:
    """Every real bounce is a BOUNCE; delay warnings too, with "delay" in the reason."""
    result = screen(read((BOUNCES / name).read_bytes()), IMPORTED, OWN)
    assert result.verdict is Verdict.BOUNCE, result.reason
    assert result.reason.startswith("delay") is _is_delay(name), result.reason


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("relative", OTHER_REPORTS)
def test_other_corpus_delivery_reports_are_bounces(relative: str, read: Reader) -> None:
    result = screen(read((CORPUS / relative).read_bytes()), IMPORTED, OWN)
    assert result.verdict is Verdict.BOUNCE, result.reason


def _recipient_params() -> list[object]:
    params: list[object] = []
    for name in WITH_ADDRESSES:
        marks = (
            [pytest.mark.xfail(strict=True, reason=IMPOSSIBLE_RECIPIENTS[name])]
            if (name in IMPOSSIBLE_RECIPIENTS)
            else []
        )
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("name", _recipient_params())
def test_bounced_recipients_are_the_failed_addresses(name: str, read: Reader) -> None:
    """Exactly the addresses upstream asserts (case-insensitive): none missed, none invented."""
    found = bounced_recipients(read((BOUNCES / name).read_bytes()))
    assert {a.lower() for a in found} == _expected(name)


@pytest.mark.parametrize("read", READERS)
def test_bounced_recipients_share(read: Reader) -> None:
    """The share of samples whose failed recipients are found exactly stays high."""
    exact = sum(
        {a.lower() for a in bounced_recipients(read((BOUNCES / name).read_bytes()))}
        == _expected(name)
        for name in WITH_ADDRESSES
    )
    share = exact / len(WITH_ADDRESSES)
    assert share >= MIN_RECIPIENT_SHARE, f"{exact}/{len(WITH_ADDRESSES)} exact"


@pytest.mark.parametrize("read", READERS)
@pytest.mark.parametrize("name", [n for n in BOUNCE_FILES if n not in WITH_ADDRESSES])
def test_bounce_without_named_recipient_does_not_crash(name: str, read: Reader) -> None:
    assert isinstance(bounced_recipients(read((BOUNCES / name).read_bytes())), tuple)


def _returned_message_ids(raw: bytes) -> set[str]:
    """Message-IDs on header lines of the file other than the bounce's own."""
    own = str(email.message_from_bytes(raw).get("Message-ID") or "").strip().strip("<>")
    found = re.findall(rb"(?im)^[>\s]*message-id\s*:\s*<([^<>\s]+)>", raw)
    return {mid.decode("latin-1") for mid in found} - {own}


@pytest.mark.parametrize("read", READERS)
def test_bounced_message_ids_find_the_returned_mail(read: Reader) -> None:
    """Wherever the returned mail's Message-ID survives in a bounce, it is found."""
    missed = []
    for name in BOUNCE_FILES:
        raw = (BOUNCES / name).read_bytes()
        expected = _returned_message_ids(raw)
        if expected and not expected & set(bounced_message_ids(read(raw))):
            missed.append(name)
    assert missed == []
