"""Stage 8 composer: every template renders into a valid mail with the promised headers.

The parametrised test walks the template folders that exist, so a new language folder
(``templates/ro``, ``templates/nl``…) is tested as soon as it is added.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailgate.agent_notices import AGENT_KINDS
from mailgate.config import OutboundSettings
from mailgate.errors import ConfigError
from mailgate.outbound.compose import (
    MAX_REFERENCES,
    STATUS_TEXT,
    Composer,
    Notification,
    RenderedMail,
    builtin_templates_dir,
    clean_header_text,
    encode_subject,
    megabytes,
    status_text,
)
from store.enums import LOCALES, Status

SECRET = b"0123456789abcdef0123456789abcdef"
NOW = datetime(2025, 11, 28, 9, 30, tzinfo=UTC)
SETTINGS = OutboundSettings(**{"from": "Example Support <support@example.com>"})
TICKET = {
    "id": 39430,
    "subject": "Checkout nu funcționează \u2013 comanda 1042",  # en dash: not ASCII
    "status": "open",
    "priority": "immediate",
    "type": "problem",
    "sector": "payments",
    "requester": "ana@magazin.example",
    "requester_name": "Ana Popescu",
    "shop": "Magazin Exemplu",
}
CONTEXT: dict[str, Any] = {
    "ticket": TICKET,
    "message": "Hello Ana,\n\nthe <b>payment module</b> is fixed & live.\n\nIon",
    "old_status": "open",
    "new_status": "pending",
    "peak": True,
    "too_large": [{"filename": "screen-recording.mov", "size": 41_000_000}],
    "attachment_limits": {"file": 10_485_760, "mail": 20_971_520},
}
TEMPLATE_CASES = sorted(
    (folder.name, path.name.removesuffix(".txt.j2"))
    for folder in builtin_templates_dir().iterdir()
    if folder.is_dir()
    for path in folder.glob("*.txt.j2")
)


def make_composer(override_dir: Path | None = None, **settings: Any) -> Composer:
    outbound = SETTINGS.model_copy(update=settings) if settings else SETTINGS
    return Composer(outbound, SECRET, lambda: NOW, override_dir=override_dir)


def notification(kind: str = "ack", language: str = "en", **changes: Any) -> Notification:
    values: dict[str, Any] = {
        "kind": kind,
        "ticket_id": 39430,
        "language": language,
        "to": ("Ana Popescu <ana@magazin.example>",),
        "cc": ("ion@magazin.example",),
        "context": CONTEXT,
        "in_reply_to": "CAF=abc123@mail.gmail.com",
        "references": ("root-1@magazin.example",),
    }
    values.update(changes)
    return Notification(**values)


def parse(rendered: RenderedMail) -> EmailMessage:
    msg = message_from_bytes(rendered.raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def parts(msg: EmailMessage) -> dict[str, str]:
    found: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            assert isinstance(part, EmailMessage)
            found[part.get_content_type()] = part.get_content()
    return found


# -- every template, every language -------------------------------------------------------


def test_the_builtin_templates_are_found() -> None:
    assert ("en", "ack") in TEMPLATE_CASES
    assert ("en", "agent_reply") in TEMPLATE_CASES
    assert ("en", "status_changed") in TEMPLATE_CASES
    assert ("en", "attachments_too_large") in TEMPLATE_CASES


def template_files(language: str) -> set[str]:
    return {p.name for p in (builtin_templates_dir() / language).glob("*.j2")}


# Mail to agents is internal and always rendered in English (mailgate/agent_notices.py).
AGENT_ONLY = {f"{kind}.txt.j2" for kind in AGENT_KINDS} | {
    name for name in template_files("en") if name.startswith("_agent_")
}


@pytest.mark.parametrize("language", LOCALES)
def test_every_language_has_every_english_template(language: str) -> None:
    """A notification added in English and not yet translated fails here, by name."""
    merchant_facing = template_files("en") - AGENT_ONLY
    missing = merchant_facing - template_files(language)
    assert not missing, f"templates/{language} lacks {sorted(missing)}"
    assert template_files(language) - AGENT_ONLY == merchant_facing


# What merchants receive goes out as text and HTML (multipart/alternative).
MERCHANT_KINDS = (
    "ack",
    "agent_reply",
    "status_changed",
    "attachments_too_large",
    "standby_reminder",
    "budget_proposal",
    "budget_decided",
    "deadline_set",
)


@pytest.mark.parametrize("language", LOCALES)
def test_merchant_notifications_have_a_text_and_an_html_part(language: str) -> None:
    files = template_files(language)
    for kind in MERCHANT_KINDS:
        assert {f"{kind}.txt.j2", f"{kind}.html.j2"} <= files, kind


@pytest.mark.parametrize("language", LOCALES)
def test_every_language_has_status_words(language: str) -> None:
    assert set(STATUS_TEXT[language]) == {s.value for s in Status}


@pytest.mark.parametrize(("language", "kind"), TEMPLATE_CASES)
def test_every_template_renders_a_valid_mail(language: str, kind: str) -> None:
    rendered = make_composer().render(notification(kind, language))
    msg = parse(rendered)

    assert rendered.raw.isascii(), "7-bit clean: no relay has to convert it"
    assert all(len(line) <= 998 for line in rendered.raw.split(b"\r\n"))
    assert not msg.defects
    assert msg["From"] == "Example Support <support@example.com>"
    assert msg["To"] == "Ana Popescu <ana@magazin.example>"
    assert msg["Cc"] == "ion@magazin.example"
    assert "[#39430]" in msg["Subject"]
    assert rendered.subject == msg["Subject"]
    assert msg["Message-ID"] == f"<{rendered.message_id}>"
    assert msg["In-Reply-To"] == "<CAF=abc123@mail.gmail.com>"
    assert msg["References"].split() == ["<root-1@magazin.example>", "<CAF=abc123@mail.gmail.com>"]
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Mailgate-Ticket"] == "39430"
    assert msg["Content-Language"] == language
    assert parsedate_to_datetime(msg["Date"]) == NOW
    assert rendered.mail_from == "support@example.com"
    assert rendered.recipients == ("ana@magazin.example", "ion@magazin.example")

    bodies = parts(msg)
    assert "text/plain" in bodies
    if (builtin_templates_dir() / language / f"{kind}.html.j2").is_file():
        assert msg.get_content_type() == "multipart/alternative"
        assert list(bodies) == ["text/plain", "text/html"]
        assert all(p.get("MIME-Version") is None for p in msg.iter_parts())
    for text in [*bodies.values(), msg["Subject"]]:
        assert "{{" not in text
        assert "}}" not in text
        assert "{%" not in text
        assert "Undefined" not in text
        assert "None" not in text
    assert "39430" in bodies["text/plain"]


@pytest.mark.parametrize("language", sorted({lang for lang, _ in TEMPLATE_CASES}))
@pytest.mark.parametrize("status", list(Status))
def test_status_changed_renders_every_status(language: str, status: Status) -> None:
    context = {**CONTEXT, "new_status": status.value}
    msg = parse(make_composer().render(notification("status_changed", language, context=context)))
    words = status_text(status.value, language)
    assert words in msg["Subject"]
    assert words in parts(msg)["text/plain"]


def _template_text(text: str) -> str:
    """``text`` without what came from the context (the agent's words, the subject...)."""
    text = text.replace("\r\n", "\n")
    for supplied in (str(CONTEXT["message"]), str(TICKET["subject"]), "support@example.com"):
        text = text.replace(supplied, "")
    return text


def _english_sentences(kind: str) -> set[str]:
    """Lines of the English rendering that the template itself wrote."""
    text = parts(parse(make_composer().render(notification(kind, "en"))))["text/plain"]
    lines = (line.strip() for line in _template_text(text).splitlines())
    return {line for line in lines if len(line) >= 20 and "screen-recording" not in line}


@pytest.mark.parametrize(("language", "kind"), [case for case in TEMPLATE_CASES if case[0] != "en"])
def test_translations_leave_no_english_behind(language: str, kind: str) -> None:
    msg = parse(make_composer().render(notification(kind, language)))
    bodies = parts(msg)
    for sentence in _english_sentences(kind):
        for text in bodies.values():
            assert sentence not in text, f"untranslated in {language}/{kind}: {sentence!r}"
    if "text/html" in bodies:
        assert f'<html lang="{language}">' in bodies["text/html"]
    ours = _template_text(bodies["text/plain"]) + _template_text(msg["Subject"])
    for english in ("Kind regards", "Hello", "Thank you", "Please", "support team", "your "):
        assert english not in ours, english


def test_romanian_is_written_with_comma_below_letters() -> None:
    """ș and ț, never the Turkish cedilla forms ş and ţ that old keyboards produce."""
    for path in (builtin_templates_dir() / "ro").glob("*.j2"):
        text = path.read_text(encoding="utf-8")
        assert not set(text) & set("şţŞŢ"), path.name
    assert "ț" in STATUS_TEXT["ro"]["pending"] + "".join(
        p.read_text(encoding="utf-8") for p in (builtin_templates_dir() / "ro").glob("*.j2")
    )


# The support guides' advice, in each language's own words.
ADVICE = {
    "en": ("URL", "order number", "SKU", "error message", "screenshot", "password"),
    "ro": ("URL", "numerele comenzilor", "SKU", "mesajele de eroare", "capturi de ecran", "parol"),
    "nl": ("URL", "bestelnummers", "SKU", "foutmeldingen", "screenshots", "wachtwoord"),
    "pt": ("URL", "números de encomenda", "SKU", "mensagens de erro", "capturas de ecrã",
           "palavra"),
    "pl": ("URL", "numery zamówień", "SKU", "komunikatów o błędach", "zrzuty ekranu", "hase"),
}  # fmt: skip


@pytest.mark.parametrize("language", LOCALES)
def test_the_ack_gives_the_support_guides_advice_in_every_language(language: str) -> None:
    context = {**CONTEXT, "peak": False, "too_large": []}
    bodies = parts(parse(make_composer().render(notification("ack", language, context=context))))
    assert list(bodies) == ["text/plain", "text/html"]
    for text in bodies.values():
        assert "#39430" in text
        assert "[#39430]" in text
        for advice in ADVICE[language]:
            assert advice in text, (language, advice)
        assert "screen-recording.mov" not in text


@pytest.mark.parametrize("language", LOCALES)
@pytest.mark.parametrize("kind", ["ack", "attachments_too_large"])
def test_files_left_out_are_listed_with_sizes_and_limits(language: str, kind: str) -> None:
    bodies = parts(parse(make_composer().render(notification(kind, language))))
    for text in bodies.values():
        assert "screen-recording.mov" in text
        assert megabytes(41_000_000, language) in text
        assert "10 MB" in text
        assert "20 MB" in text


def test_sizes_are_written_as_each_language_writes_them() -> None:
    assert megabytes(41_000_000, "en") == "39.2 MB"
    for language in ("ro", "nl", "pt", "pl"):
        assert megabytes(41_000_000, language) == "39,2 MB"
    assert megabytes(10_485_760) == "10 MB"
    assert megabytes(10_485_761) == "10.1 MB", "rounded up: never shown as the limit itself"
    assert megabytes(1) == "0.1 MB"


def test_pending_says_we_are_waiting_for_the_answer() -> None:
    context = {**CONTEXT, "new_status": "pending"}
    text = parts(parse(make_composer().render(notification("status_changed", context=context))))
    assert "waiting for your answer" in text["text/plain"].lower()


def test_ack_gives_the_number_and_the_support_guides_advice() -> None:
    context = {**CONTEXT, "peak": False}
    bodies = parts(parse(make_composer().render(notification("ack", context=context))))
    for text in bodies.values():
        assert "#39430" in text
        assert "[#39430]" in text
        for advice in ("URL", "order number", "SKU", "error message", "screenshot", "password"):
            assert advice in text, advice
        assert "new email" in text
        assert "slower than usual" not in text


def test_ack_in_peak_mode_says_answers_are_slower() -> None:
    bodies = parts(parse(make_composer().render(notification("ack"))))
    for text in bodies.values():
        assert "slower than usual" in text
        assert "sales campaign" in text


def test_agent_reply_carries_the_text_escaped_in_html() -> None:
    msg = parse(make_composer().render(notification("agent_reply", auto_submitted=False)))
    bodies = parts(msg)
    assert "the <b>payment module</b> is fixed & live." in bodies["text/plain"]
    assert "the &lt;b&gt;payment module&lt;/b&gt; is fixed &amp; live." in bodies["text/html"]
    assert "Auto-Submitted" not in msg
    assert msg["Subject"].startswith("Re: [#39430]")


def test_non_ascii_subject_and_names_survive() -> None:
    rendered = make_composer().render(
        notification(to=("Łucja Żółć <lucja@sklep.example>",), cc=("Zoë <zoe@winkel.example>",))
    )
    msg = parse(rendered)
    assert TICKET["subject"] in msg["Subject"]
    assert msg["To"].addresses[0].display_name == "Łucja Żółć"
    assert msg["Cc"].addresses[0].display_name == "Zoë"


# -- header injection ---------------------------------------------------------------------


def test_crlf_in_the_subject_does_not_create_a_header() -> None:
    context = {**CONTEXT, "ticket": {**TICKET, "subject": "Help\r\nBcc: thief@evil.example\r\n"}}
    rendered = make_composer().render(notification("ack", context=context))
    msg = parse(rendered)
    assert "Bcc" not in msg
    assert b"\r\nBcc:" not in rendered.raw  # not even in the body: the subject is one line
    assert "thief@evil.example" not in rendered.recipients
    assert "\n" not in msg["Subject"]


@pytest.mark.parametrize(
    "name",
    [
        "Ana\r\nBcc: thief@evil.example",
        "Ana\nBcc: thief@evil.example",
        "Ana\rBcc: thief@evil.example",
        "Ana\u2028Bcc: thief@evil.example",
        '"Ana\\"\r\nBcc: thief@evil.example"',
    ],
)
def test_crlf_in_a_display_name_does_not_create_a_header(name: str) -> None:
    rendered = make_composer().render(notification(to=(f"{name} <ana@magazin.example>",)))
    msg = parse(rendered)
    assert "Bcc" not in msg
    assert rendered.recipients == ("ana@magazin.example", "ion@magazin.example")
    (address,) = msg["To"].addresses
    assert address.addr_spec == "ana@magazin.example"
    assert "\n" not in address.display_name


@pytest.mark.parametrize(
    "address",
    [
        "ana@magazin.example\r\nBcc: thief@evil.example",
        "ana@magazin.example, thief@evil.example",
        "ana@magazin.example>\r\nBcc: thief@evil.example",
        "<ana@magazin.example> <thief@evil.example>x",
        '"quoted local"@magazin.example',
        "ana",
        "ana@",
        "@magazin.example",
        "ana@bad_domain.example",
    ],
)
def test_a_to_that_is_not_one_addr_spec_is_refused(address: str) -> None:
    with pytest.raises(ValueError, match="no valid To"):
        make_composer().render(notification(to=(address,), cc=()))


def test_a_bad_cc_is_dropped_and_the_mail_still_goes() -> None:
    rendered = make_composer().render(
        notification(cc=("ion@magazin.example\r\nBcc: thief@evil.example", "maria@shop.example"))
    )
    assert rendered.recipients == ("ana@magazin.example", "maria@shop.example")
    assert "Bcc" not in parse(rendered)


def test_reply_to_and_idn_domains() -> None:
    rendered = make_composer().render(
        notification(to=("ana@măgazin.example",), reply_to="Agent Ion <ion@example.com>")
    )
    msg = parse(rendered)
    assert msg["Reply-To"] == "Agent Ion <ion@example.com>"
    assert rendered.recipients[0] == "ana@" + "măgazin.example".encode("idna").decode()
    assert rendered.recipients[0].startswith("ana@xn--")


def test_a_cc_equal_to_the_to_is_not_repeated() -> None:
    rendered = make_composer().render(notification(cc=("ANA@magazin.example",)))
    assert "Cc" not in parse(rendered)
    assert rendered.recipients == ("ana@magazin.example",)


@pytest.mark.parametrize("bad", ["bad id", "a<b>@c", "x\r\nBcc: y@z", "", "noatsign"])
def test_unsafe_message_ids_are_left_out_of_the_thread_headers(bad: str) -> None:
    msg = parse(make_composer().render(notification(in_reply_to=bad, references=(bad,))))
    assert "In-Reply-To" not in msg
    assert "References" not in msg
    assert "Bcc" not in msg


# -- thread headers -----------------------------------------------------------------------


def test_references_are_deduplicated_and_capped_keeping_the_root() -> None:
    refs = (*(f"ref-{i}@example.com" for i in range(30)), "ref-3@example.com")
    msg = parse(make_composer().render(notification(references=refs, in_reply_to="last@x.example")))
    ids = msg["References"].split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == "<ref-0@example.com>"
    assert ids[-1] == "<last@x.example>"
    assert len(set(ids)) == len(ids)


def test_long_message_ids_are_written_as_they_are() -> None:
    """The stdlib folder would turn a long msg-id into encoded words and break threading."""
    long_id = "CAE" + "x" * 120 + "@mail.gmail.com"
    rendered = make_composer().render(notification(in_reply_to=long_id, references=()))
    assert f"In-Reply-To: <{long_id}>".encode() in rendered.raw
    assert b"=?utf-8?" not in rendered.raw.split(b"\r\n\r\n")[0].split(b"References")[1]


# -- Message-IDs --------------------------------------------------------------------------


def test_our_message_id_is_signed_and_verifies() -> None:
    composer = make_composer()
    message_id = composer.new_message_id(39430)
    assert message_id.startswith("mg.39430.")
    assert message_id.endswith("@example.com")
    assert composer.is_our_message_id(message_id) == 39430
    assert composer.is_our_message_id(f"<{message_id}>") == 39430
    assert composer.new_message_id(39430) != message_id


def test_a_tampered_message_id_does_not_verify() -> None:
    composer = make_composer()
    prefix, ticket, nonce, rest = composer.new_message_id(39430).split(".", 3)
    mac, domain = rest.split("@")
    flipped = ("0" if mac[0] != "0" else "1") + mac[1:]
    assert composer.is_our_message_id(f"{prefix}.39431.{nonce}.{mac}@{domain}") is None
    assert composer.is_our_message_id(f"{prefix}.{ticket}.{nonce}.{flipped}@{domain}") is None
    other = Composer(SETTINGS, b"another secret", lambda: NOW)
    assert other.is_our_message_id(composer.new_message_id(39430)) is None
    for junk in ("", "mg.1.2.3@x", "CAF=abc@mail.gmail.com", "mg.39430..@example.com"):
        assert composer.is_our_message_id(junk) is None


def test_message_id_domain_setting() -> None:
    composer = make_composer(message_id_domain="mail.example.net")
    message_id = composer.new_message_id(5)
    assert message_id.endswith("@mail.example.net")
    assert composer.is_our_message_id(message_id) == 5


def test_an_empty_secret_is_refused() -> None:
    with pytest.raises(ConfigError):
        Composer(SETTINGS, b"", lambda: NOW)


def test_a_bad_from_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        Composer(SETTINGS.model_copy(update={"from_": "not an address"}), SECRET, lambda: NOW)


# -- template lookup ----------------------------------------------------------------------


def write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_an_override_template_wins_over_the_builtin(tmp_path: Path) -> None:
    write(
        tmp_path / "en",
        "ack.txt.j2",
        "{% block subject %}Custom [#{{ ticket.id }}]{% endblock %}"
        "{% block body %}Custom body for {{ ticket.requester_name }}{% endblock %}",
    )
    msg = parse(make_composer(tmp_path).render(notification("ack")))
    assert msg["Subject"] == "Custom [#39430]"
    assert msg.get_content_type() == "text/plain", "the HTML part comes from the same folder"
    assert parts(msg)["text/plain"].strip() == "Custom body for Ana Popescu"


def test_lookup_order_language_override_then_english(tmp_path: Path) -> None:
    write(
        tmp_path / "xx",
        "ack.txt.j2",
        "{% block subject %}XX{% endblock %}{% block body %}xx{% endblock %}",
    )
    write(
        tmp_path / "en",
        "ack.txt.j2",
        "{% block subject %}EN{% endblock %}{% block body %}en{% endblock %}",
    )
    composer = make_composer(tmp_path)
    xx = parse(composer.render(notification("ack", "xx")))
    assert (xx["Subject"], xx["Content-Language"]) == ("[#39430] XX", "xx")
    yy = parse(composer.render(notification("ack", "yy")))
    assert (yy["Subject"], yy["Content-Language"]) == ("[#39430] EN", "en")
    regional = parse(composer.render(notification("ack", "xx-YY")))
    assert regional["Content-Language"] == "xx"
    builtin = parse(composer.render(notification("agent_reply", "xx")))
    assert builtin["Content-Language"] == "en"  # no override for this kind: built-in English


def test_a_template_added_after_the_first_render_is_used_at_once(tmp_path: Path) -> None:
    """The composer remembers where to look, not what it found there: an override an admin
    writes (or removes) while the gateway runs counts from the next notification on."""
    composer = make_composer(tmp_path)
    assert parse(composer.render(notification("ack", "ro")))["Content-Language"] == "ro"
    write(
        tmp_path / "ro",
        "ack.txt.j2",
        "{% block subject %}Nou{% endblock %}{% block body %}nou{% endblock %}",
    )
    added = parse(composer.render(notification("ack", "ro")))
    assert added["Subject"] == "[#39430] Nou"
    assert added.get_content_type() == "text/plain", "no HTML override in that folder"
    write(tmp_path / "ro", "ack.html.j2", "<p>nou</p>")
    assert parse(composer.render(notification("ack", "ro"))).is_multipart()
    (tmp_path / "ro" / "ack.txt.j2").unlink()
    (tmp_path / "ro" / "ack.html.j2").unlink()
    builtin = parse(composer.render(notification("ack", "ro")))
    assert builtin["Subject"] != "[#39430] Nou" and builtin.is_multipart()


def test_the_tag_is_added_when_a_template_forgets_it(tmp_path: Path) -> None:
    write(
        tmp_path / "en",
        "ack.txt.j2",
        "{% block subject %}Thanks\nfor   writing{% endblock %}{% block body %}Hi{% endblock %}",
    )
    assert parse(make_composer(tmp_path).render(notification()))["Subject"] == (
        "[#39430] Thanks for writing"
    )


@pytest.mark.parametrize(
    "broken",
    [
        "{% block subject %}{{ no_such_variable }}{% endblock %}{% block body %}x{% endblock %}",
        "{% block subject %}{% if %}{% endblock %}",
        "{% block subject %}{{ 1 / 0 }}{% endblock %}{% block body %}x{% endblock %}",
        "{% block body %}no subject block{% endblock %}",
    ],
)
def test_a_broken_override_falls_back_to_the_builtin(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, broken: str
) -> None:
    write(tmp_path / "en", "ack.txt.j2", broken)
    with caplog.at_level(logging.ERROR, logger="mailgate.outbound.compose"):
        msg = parse(make_composer(tmp_path).render(notification("ack")))
    assert "We have received your request" in msg["Subject"]
    assert msg.get_content_type() == "multipart/alternative"
    assert any("ack" in r.getMessage() for r in caplog.records)


def test_a_broken_override_html_falls_back_as_a_whole(tmp_path: Path) -> None:
    write(
        tmp_path / "en",
        "ack.txt.j2",
        "{% block subject %}Mine{% endblock %}{% block body %}mine{% endblock %}",
    )
    write(tmp_path / "en", "ack.html.j2", "<p>{{ missing }}</p>")
    msg = parse(make_composer(tmp_path).render(notification("ack")))
    assert "We have received your request" in msg["Subject"]


def test_a_language_cannot_name_a_path(tmp_path: Path) -> None:
    write(
        tmp_path / "secret",
        "ack.txt.j2",
        "{% block subject %}LEAK{% endblock %}{% block body %}x{% endblock %}",
    )
    composer = make_composer(tmp_path / "overrides")
    msg = parse(composer.render(notification("ack", "../secret")))
    assert "LEAK" not in msg["Subject"]
    assert msg["Content-Language"] == "en"


def test_unknown_or_unsafe_kinds_are_refused() -> None:
    for kind in ("no_such_kind", "../en/ack", "Ack"):
        with pytest.raises(ValueError):
            make_composer().render(notification(kind))


def test_a_naive_clock_is_refused() -> None:
    composer = Composer(SETTINGS, SECRET, lambda: datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="timezone"):
        composer.render(notification())


# -- status words and subject encoding ----------------------------------------------------


def test_status_text_has_words_for_every_status_and_falls_back() -> None:
    for lang, words in STATUS_TEXT.items():
        assert set(words) == {s.value for s in Status}, lang
    assert status_text("pending", "en") == "waiting for your answer"
    assert status_text("pending", "zz") == "waiting for your answer"
    assert status_text("brand_new_state") == "brand new state"


@given(st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=300))
def test_encoded_subjects_read_back_exactly(subject: str) -> None:
    """Whatever the text, a reader gets back exactly the one-line subject we meant."""
    raw = f"Subject: {encode_subject(subject)}\r\n\r\n".encode("ascii")
    header_lines = raw.split(b"\r\n")[:-2]
    assert all(len(line) <= 78 or b" " not in line.strip() for line in header_lines)
    assert message_from_bytes(raw, policy=policy.default)["Subject"] == clean_header_text(subject)
