"""Stage 4, screen: loops, bounces, auto-replies and bulk mail are told from people's mail.

Mails are written inline as raw RFC 5322 text and read with the pipeline's own parser.
"""

from __future__ import annotations

from email.header import Header

import pytest

from mailgate.parse import parse_mail
from mailgate.screen import (
    OwnMail,
    bounced_message_ids,
    bounced_recipients,
    is_auto_reply,
    is_bounce,
    is_bulk,
    is_own_mail,
    screen,
)
from mailgate.values import Envelope, ParsedMail, Verdict

OWN = OwnMail(
    addresses=("support@example.com", "suport@magazin.example"),
    message_id_domain="mailgate.example.com",
)
MERCHANT = "Ana Popescu <ana@magazin-exemplu.ro>"
SMTP = Envelope(mail_from="ana@magazin-exemplu.ro", rcpt_tos=("support@example.com",))
IMPORTED = Envelope()  # a file import: the envelope sender is unknown, not null


def make_mail(
    *extra_headers: str,
    sender: str = MERCHANT,
    subject: str = "Plata cu cardul nu funcționează",
    body: str = "Bună ziua,\n\nClienții nu pot plăti cu cardul în checkout.\n\nMulțumesc,\nAna\n",
    content_type: str = "text/plain; charset=utf-8",
    message_id: str = "<20240501101500.1234@magazin-exemplu.ro>",
) -> ParsedMail:
    """A merchant's mail, with ``extra_headers`` ("Name: value") added to the header."""
    if not subject.isascii():  # as mail clients send it: an RFC 2047 encoded word
        subject = Header(subject, "utf-8").encode()
    headers = [
        f"From: {sender}",
        "To: support@example.com",
        f"Subject: {subject}",
        "Date: Wed, 01 May 2024 10:15:00 +0300",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        f"Content-Type: {content_type}",
        "Content-Transfer-Encoding: 8bit",
        *extra_headers,
    ]
    return parse_mail(("\n".join(headers) + "\n\n" + body).encode())


DSN_BODY = """\
This is a MIME-encapsulated message.

--B
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.magazin-exemplu.ro.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<ion@magazin-exemplu.ro>: host mx.magazin-exemplu.ro said: 550 5.1.1 User unknown

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.magazin-exemplu.ro

Final-Recipient: rfc822; ion@magazin-exemplu.ro
Original-Recipient: rfc822;ion@magazin-exemplu.ro
Action: {action}
Status: 5.1.1

--B
Content-Type: message/rfc822

From: Example Support <support@example.com>
To: ion@magazin-exemplu.ro
Subject: [#42] Am primit cererea dumneavoastră
Message-ID: <mg.42.7f3a@mailgate.example.com>
X-Mailgate-Ticket: 42
Auto-Submitted: auto-replied

Bună ziua, am primit cererea.
--B--
"""
DSN_TYPE = 'multipart/report; report-type=delivery-status; boundary="B"'
DAEMON = "Mail Delivery System <MAILER-DAEMON@mx.magazin-exemplu.ro>"

EXIM_BODY = """\
This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  ion@magazin-exemplu.ro
    SMTP error from remote mail server after RCPT TO:<ion@magazin-exemplu.ro>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

Return-path: <support@example.com>
From: Example Support <support@example.com>
To: ion@magazin-exemplu.ro
Subject: [#7] Status: pending
Message-ID: <mg.7.c0ffee@mailgate.example.com>

Vă rugăm să ne trimiteți detaliile.
"""


# --- the rules, one row each ------------------------------------------------------------------

CASES: list[tuple[str, ParsedMail, Envelope, Verdict, str]] = [
    # (id, mail, envelope, verdict, a word the reason must contain)
    ("normal_merchant_mail", make_mail(), SMTP, Verdict.OK, ""),
    ("imported_mail_unknown_envelope_is_ok", make_mail(), IMPORTED, Verdict.OK, ""),
    # loop
    (
        "ticket_header_is_loop",
        make_mail("X-Mailgate-Ticket: 42"),
        SMTP,
        Verdict.LOOP,
        "X-Mailgate-Ticket",
    ),
    (
        "our_message_id_is_loop",
        make_mail(message_id="<mg.42.abc@mailgate.example.com>"),
        SMTP,
        Verdict.LOOP,
        "Message-ID",
    ),
    (
        "our_message_id_domain_case_insensitive",
        make_mail(message_id="<mg.1.x@MailGate.Example.COM>"),
        SMTP,
        Verdict.LOOP,
        "Message-ID",
    ),
    (
        "mg_prefix_in_other_domain_is_ok",
        make_mail(message_id="<mg.42.abc@other.example>"),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "our_domain_without_mg_prefix_is_ok",
        make_mail(message_id="<abc.42@mailgate.example.com>"),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "from_our_support_address_is_loop",
        make_mail(sender="Support <SUPPORT@example.com>"),
        SMTP,
        Verdict.LOOP,
        "support@example.com",
    ),
    (
        "from_our_plus_address_is_loop",
        make_mail(sender="support+39430@example.com"),
        SMTP,
        Verdict.LOOP,
        "our own address",
    ),
    # bounce
    ("null_envelope_sender_is_bounce", make_mail(), Envelope(mail_from=""), Verdict.BOUNCE, "null"),
    (
        "angle_null_envelope_sender_is_bounce",
        make_mail(),
        Envelope(mail_from="<>"),
        Verdict.BOUNCE,
        "null",
    ),
    (
        "return_path_null_on_import_is_bounce",
        make_mail("Return-Path: <>"),
        IMPORTED,
        Verdict.BOUNCE,
        "Return-Path",
    ),
    (
        "return_path_null_ignored_when_envelope_known",
        make_mail("Return-Path: <>"),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "dsn_report_is_bounce",
        make_mail(
            sender=DAEMON,
            subject="Undelivered Mail Returned to Sender",
            body=DSN_BODY.format(action="failed"),
            content_type=DSN_TYPE,
        ),
        SMTP,
        Verdict.BOUNCE,
        "delivery-status",
    ),
    (
        "dsn_from_a_person_address_still_bounce",
        make_mail(
            subject="Notification", body=DSN_BODY.format(action="failed"), content_type=DSN_TYPE
        ),
        SMTP,
        Verdict.BOUNCE,
        "delivery-status",
    ),
    (
        "mailer_daemon_sender_is_bounce",
        make_mail(sender="MAILER-DAEMON@mx.example.net", subject="Hello"),
        SMTP,
        Verdict.BOUNCE,
        "MAILER-DAEMON",
    ),
    (
        "postmaster_sender_is_bounce",
        make_mail(sender="postmaster@mx.example.net", subject="Hi"),
        SMTP,
        Verdict.BOUNCE,
        "postmaster",
    ),
    (
        "mail_delivery_subsystem_name_is_bounce",
        make_mail(sender="Mail Delivery Subsystem <mds@mx.example.net>", subject="Hi"),
        SMTP,
        Verdict.BOUNCE,
        "Mail Delivery Subsystem",
    ),
    (
        "empty_from_address_is_bounce",
        make_mail(sender='"Mail System" <>', subject="Mail Error"),
        SMTP,
        Verdict.BOUNCE,
        "empty From",
    ),
    (
        "exim_failed_recipients_header_is_bounce",
        make_mail(
            "X-Failed-Recipients: ion@magazin-exemplu.ro",
            sender="mx@magazin-exemplu.ro",
            subject="Hi",
        ),
        SMTP,
        Verdict.BOUNCE,
        "X-Failed-Recipients",
    ),
    (
        "exim_text_is_bounce",
        make_mail(sender="robot@magazin-exemplu.ro", subject="Notice", body=EXIM_BODY),
        SMTP,
        Verdict.BOUNCE,
        "mail delivery",
    ),
    (
        "exchange_undeliverable_subject_is_bounce",
        make_mail(
            sender="Microsoft Outlook <x@magazin-exemplu.ro>",
            subject="Undeliverable: [#7] Status: pending",
        ),
        SMTP,
        Verdict.BOUNCE,
        "Undeliverable",
    ),
    (
        "qmail_failure_notice_subject_is_bounce",
        make_mail(subject="failure notice"),
        SMTP,
        Verdict.BOUNCE,
        "failure notice",
    ),
    (
        "sendmail_returned_mail_subject_is_bounce",
        make_mail(subject="Returned mail: see transcript for details"),
        SMTP,
        Verdict.BOUNCE,
        "Returned mail",
    ),
    (
        "gmail_dsn_subject_is_bounce",
        make_mail(subject="Delivery Status Notification (Failure)"),
        SMTP,
        Verdict.BOUNCE,
        "Delivery Status Notification",
    ),
    (
        "exim_subject_is_bounce",
        make_mail(subject="Mail delivery failed: returning message to sender"),
        SMTP,
        Verdict.BOUNCE,
        "Mail delivery failed",
    ),
    (
        "dsn_delayed_action_is_delay_bounce",
        make_mail(
            sender=DAEMON,
            subject="Delayed Mail (still being retried)",
            body=DSN_BODY.format(action="delayed"),
            content_type=DSN_TYPE,
        ),
        SMTP,
        Verdict.BOUNCE,
        "delay",
    ),
    (
        "gmail_delay_subject_is_delay_bounce",
        make_mail(
            sender="Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
            subject="Delivery Status Notification (Delay)",
        ),
        SMTP,
        Verdict.BOUNCE,
        "delay",
    ),
    (
        "merchant_forwarding_a_bounce_is_ok",
        make_mail(
            subject="Fwd: Undeliverable: Comanda 1234 confirmată",
            body="Bună,\n\nClienții nu primesc confirmarea comenzii, vedeți mai jos.\n\n"
            "---------- Forwarded message ---------\nUndeliverable: ...\n",
        ),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "merchant_parcel_delivery_failed_is_ok",
        make_mail(
            subject="Delivery failed for order 1234",
            body="Hello,\n\nThe courier was unable to deliver the parcel and the delivery "
            "failed twice. Our customer's order emails were not delivered either.\n",
        ),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "merchant_complaining_about_shop_mail_is_ok",
        make_mail(
            subject="Mail delivery problem: order confirmations",
            body="Hello,\n\nOur customers do not get their order confirmations. We see "
            "Delivery Status Notification and Undeliverable mail errors in the outbox.\n",
        ),
        SMTP,
        Verdict.OK,
        "",
    ),
    # auto-reply
    (
        "auto_submitted_auto_replied",
        make_mail("Auto-Submitted: auto-replied"),
        SMTP,
        Verdict.AUTO_REPLY,
        "Auto-Submitted: auto-replied",
    ),
    (
        "auto_submitted_with_comment_is_auto_reply",
        make_mail("Auto-Submitted: auto-replied (vacation)"),
        SMTP,
        Verdict.AUTO_REPLY,
        "vacation",
    ),
    (
        "auto_submitted_auto_generated",
        make_mail("Auto-Submitted: auto-generated"),
        SMTP,
        Verdict.AUTO_REPLY,
        "auto-generated",
    ),
    ("auto_submitted_no_is_ok", make_mail("Auto-Submitted: no"), SMTP, Verdict.OK, ""),
    (
        "auto_submitted_no_with_comment_is_ok",
        make_mail("Auto-Submitted: No (a person wrote it)"),
        SMTP,
        Verdict.OK,
        "",
    ),
    ("x_autoreply_header", make_mail("X-Autoreply: yes"), SMTP, Verdict.AUTO_REPLY, "X-Autoreply"),
    (
        "x_autorespond_header",
        make_mail("X-Autorespond: Vacation"),
        SMTP,
        Verdict.AUTO_REPLY,
        "X-Autorespond",
    ),
    (
        "x_auto_response_suppress_oof",
        make_mail("X-Auto-Response-Suppress: OOF"),
        SMTP,
        Verdict.AUTO_REPLY,
        "OOF",
    ),
    (
        "x_auto_response_suppress_all",
        make_mail("X-Auto-Response-Suppress: All"),
        SMTP,
        Verdict.AUTO_REPLY,
        "All",
    ),
    (
        "x_auto_response_suppress_autoreply",
        make_mail("X-Auto-Response-Suppress: DR, AutoReply"),
        SMTP,
        Verdict.AUTO_REPLY,
        "AutoReply",
    ),
    (
        "exchange_inbox_rules_loop",
        make_mail("X-MS-Exchange-Inbox-Rules-Loop: ana@x.ro"),
        SMTP,
        Verdict.AUTO_REPLY,
        "Inbox-Rules-Loop",
    ),
    (
        "precedence_auto_reply",
        make_mail("Precedence: auto_reply"),
        SMTP,
        Verdict.AUTO_REPLY,
        "auto_reply",
    ),
    (
        "read_receipt_is_auto_reply",
        make_mail(
            content_type='multipart/report; report-type=disposition-notification; boundary="R"',
            body="--R\n\nRead.\n--R--\n",
        ),
        SMTP,
        Verdict.AUTO_REPLY,
        "read receipt",
    ),
    (
        "null_sender_out_of_office_is_auto_reply",
        make_mail("Auto-Submitted: auto-replied", subject="Out of Office: [#7] Status"),
        Envelope(mail_from=""),
        Verdict.AUTO_REPLY,
        "Auto-Submitted",
    ),
    (
        "merchant_mentions_out_of_office_in_body_is_ok",
        make_mail(
            subject="Comenzi pierdute",
            body="Bună ziua,\n\nCât am fost out of office săptămâna trecută, am primit un "
            "Automatic reply de la curier.\nSunt absent mâine, vă rog sunați-l pe Ion.\n",
        ),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "out_of_office_hours_subject_is_ok",
        make_mail(subject="Out of office hours checkout fails"),
        SMTP,
        Verdict.OK,
        "",
    ),
    (
        "absent_word_at_start_is_ok",
        make_mail(subject="Absent product images after import"),
        SMTP,
        Verdict.OK,
        "",
    ),
    # bulk
    ("precedence_bulk", make_mail("Precedence: bulk"), SMTP, Verdict.BULK, "bulk"),
    ("precedence_junk", make_mail("Precedence: junk"), SMTP, Verdict.BULK, "junk"),
    ("precedence_list", make_mail("Precedence: list"), SMTP, Verdict.BULK, "list"),
    (
        "list_id_header",
        make_mail("List-Id: Shop news <news.voorbeeldwinkel.nl>"),
        SMTP,
        Verdict.BULK,
        "List-Id",
    ),
    (
        "list_unsubscribe_header",
        make_mail("List-Unsubscribe: <mailto:unsubscribe@voorbeeldwinkel.nl>"),
        SMTP,
        Verdict.BULK,
        "List-Unsubscribe",
    ),
    (
        "x_auto_response_suppress_bulk_marker",
        make_mail("X-Auto-Response-Suppress: DR, RN, NRN"),
        SMTP,
        Verdict.BULK,
        "X-Auto-Response-Suppress",
    ),
    # order: loop before bounce and auto-reply, bounce before auto-reply, auto-reply before bulk
    (
        "own_mail_with_auto_submitted_is_loop",
        make_mail("Auto-Submitted: auto-replied", "X-Mailgate-Ticket: 7"),
        SMTP,
        Verdict.LOOP,
        "X-Mailgate-Ticket",
    ),
    (
        "dsn_with_auto_submitted_is_bounce",
        make_mail(
            "Auto-Submitted: auto-replied",
            sender=DAEMON,
            subject="Undelivered Mail",
            body=DSN_BODY.format(action="failed"),
            content_type=DSN_TYPE,
        ),
        SMTP,
        Verdict.BOUNCE,
        "delivery-status",
    ),
    (
        "postfix_dsn_with_auto_submitted_from_null_sender_is_bounce",
        make_mail(
            "Auto-Submitted: auto-replied",
            "Return-Path: <>",
            sender=DAEMON,
            subject="Undelivered Mail Returned to Sender",
            body=DSN_BODY.format(action="failed"),
            content_type=DSN_TYPE,
        ),
        IMPORTED,
        Verdict.BOUNCE,
        "delivery-status",
    ),
    (
        "auto_reply_with_precedence_bulk_is_auto_reply",
        make_mail("Auto-Submitted: auto-replied", "Precedence: bulk"),
        SMTP,
        Verdict.AUTO_REPLY,
        "Auto-Submitted",
    ),
]

OUT_OF_OFFICE_SUBJECTS = [
    "Out of Office: [#12] Plata cu cardul",
    "Out of office",
    "Out of Office AutoReply: Re: order",
    "Automatic reply: [#12] Plata cu cardul",
    "Autoreply: your message",
    "Auto-Reply: your message",
    "Răspuns automat: [#12] Plata cu cardul",
    "Absent: [#12] Plata cu cardul",
    "Afwezig: [#12] Productimport",
    "Automatisch antwoord: [#12] Productimport",
    "Resposta automática: [#12] Fatura",
    "Ausente: [#12] Fatura",
    "Automatyczna odpowiedź: [#12] Zlecenie",
    "Nieobecność: [#12] Zlecenie",
]

NO_REPLY_SENDERS = [
    "noreply@platforma.example",
    "no-reply@platforma.example",
    "do-not-reply@platforma.example",
    "donotreply@platforma.example",
    "mailer@platforma.example",
    "notifications@platforma.example",
    "No Reply <no_reply@platforma.example>",
]


@pytest.mark.parametrize(
    ("mail", "envelope", "verdict", "evidence"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_screen_rule(mail: ParsedMail, envelope: Envelope, verdict: Verdict, evidence: str) -> None:
    """Each rule gives its verdict, and the reason names the evidence."""
    result = screen(mail, envelope, OWN)
    assert result.verdict is verdict, result.reason
    assert evidence.lower() in result.reason.lower()
    assert (result.reason == "") is (verdict is Verdict.OK)


@pytest.mark.parametrize("subject", OUT_OF_OFFICE_SUBJECTS)
def test_out_of_office_subject_in_every_language_is_auto_reply(subject: str) -> None:
    result = screen(make_mail(subject=subject), SMTP, OWN)
    assert result.verdict is Verdict.AUTO_REPLY
    assert result.reason.startswith("Subject:")


@pytest.mark.parametrize("sender", NO_REPLY_SENDERS)
def test_no_reply_sender_is_bulk(sender: str) -> None:
    result = screen(make_mail(sender=sender), SMTP, OWN)
    assert result.verdict is Verdict.BULK
    assert "no-reply sender" in result.reason


def test_predicates_return_reason_or_none() -> None:
    """The exported predicates answer for one rule each, regardless of the order."""
    plain = make_mail()
    assert is_own_mail(plain, OWN) is None
    assert is_bounce(plain, SMTP) is None
    assert is_auto_reply(plain) is None
    assert is_bulk(plain) is None
    both = make_mail("Auto-Submitted: auto-replied", "List-Id: <x.example>")
    assert is_auto_reply(both) == "Auto-Submitted: auto-replied"
    assert is_bulk(both) == "List-Id: <x.example>"
    assert is_own_mail(make_mail("X-Mailgate-Ticket: 9"), OWN) == "X-Mailgate-Ticket: 9"
    assert is_bounce(plain, Envelope(mail_from="")) == "null envelope sender (MAIL FROM:<>)"


def test_screen_result_is_ok_only_for_ok() -> None:
    assert screen(make_mail(), SMTP, OWN).is_ok
    assert not screen(make_mail("Precedence: bulk"), SMTP, OWN).is_ok


def test_dsn_names_failed_recipient_and_our_message_id() -> None:
    """A DSN of our notification names whom it failed for and which of our mails it was."""
    bounce = make_mail(
        sender=DAEMON,
        subject="Undelivered Mail Returned to Sender",
        body=DSN_BODY.format(action="failed"),
        content_type=DSN_TYPE,
    )
    assert bounced_recipients(bounce) == ("ion@magazin-exemplu.ro",)
    assert bounced_message_ids(bounce) == ("mg.42.7f3a@mailgate.example.com",)


def test_dsn_relayed_recipients_are_not_failures() -> None:
    relayed = make_mail(
        sender=DAEMON,
        subject="Delivery report",
        body=DSN_BODY.format(action="relayed"),
        content_type=DSN_TYPE,
    )
    assert bounced_recipients(relayed) == ()
    assert bounced_message_ids(relayed) == ("mg.42.7f3a@mailgate.example.com",)


def test_text_bounce_names_recipient_and_quoted_message_id() -> None:
    """Exim quotes the returned mail in the text: its Message-ID is read from there."""
    bounce = make_mail(
        sender=DAEMON, subject="Mail delivery failed: returning message to sender", body=EXIM_BODY
    )
    assert bounced_recipients(bounce) == ("ion@magazin-exemplu.ro",)
    assert bounced_message_ids(bounce) == ("mg.7.c0ffee@mailgate.example.com",)


def test_bounce_in_reply_to_is_a_last_resort_message_id() -> None:
    bounce = make_mail(
        "In-Reply-To: <mg.9.beef@mailgate.example.com>",
        sender=DAEMON,
        subject="Undeliverable: [#9] Hello",
        body="Delivery has failed to these recipients or groups:\n\n"
        "ion@magazin-exemplu.ro\nThe email address wasn't found.\n",
    )
    assert bounced_message_ids(bounce) == ("mg.9.beef@mailgate.example.com",)


def test_a_person_mail_names_no_bounced_recipients() -> None:
    assert bounced_recipients(make_mail()) == ()


def test_a_wrapped_report_whose_returned_mail_has_8bit_text_declared_ascii() -> None:
    """A gateway wrapped the real DSN in a message/rfc822 of its own, and the returned
    mail's text has 8-bit bytes in a part that says it is ASCII: the stdlib cannot write
    that part out as a string, so it is read from its bytes."""
    raw = (
        b"From: Mail Delivery System <mailer-daemon@relay.example.net>\n"
        b"To: support@example.com\nSubject: Undelivered Mail Returned to Sender\n"
        b"Message-ID: <wrapper@relay.example.net>\n"
        b'Content-Type: multipart/mixed; boundary="W"\n\n'
        b"--W\nContent-Type: text/plain\n\nSee the attached report.\n"
        b"--W\nContent-Type: message/rfc822\n\n"
        b"From: MAILER-DAEMON@mx.magazin-exemplu.ro\nSubject: failure\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\n\n'
        b"--B\nContent-Type: text/plain\n\nDelivery failed.\n"
        b"--B\nContent-Type: message/delivery-status\n\n"
        b"Final-Recipient: rfc822; ion@magazin-exemplu.ro\nAction: failed\nStatus: 5.1.1\n\n"
        b"--B\nContent-Type: message/rfc822\n\n"
        b"Message-ID: <mg.5.ab12@mailgate.example.com>\nSubject: [#5] Factura\n"
        b"Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: 8bit\n\n"
        b"Factur\xc4\x83 \xff\n"
        b"--B--\n"
        b"--W--\n"
    )
    bounce = parse_mail(raw)
    assert is_bounce(bounce, SMTP)
    assert "mg.5.ab12@mailgate.example.com" in bounced_message_ids(bounce)
