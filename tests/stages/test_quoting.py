"""Reply extraction: only the new part of a reply, in the five languages merchants write.

Inputs are mail bodies as clients write them (plain text or HTML); whole mails in
tests/data/parse/ are covered by test_parse.py's reply cases.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate.quoting import extract_reply, split_fragments, strip_quotes

REPLY = "Thanks, the new theme works now."
QUOTE = "> Could you switch back to the old theme?\n> \n> Support"


@pytest.mark.parametrize(
    "attribution",
    [
        "On Tue, Nov 5, 2024 at 10:41 AM Support <support@example.com> wrote:",
        "On 5 Nov 2024, at 10:41, Support <support@example.com> wrote:",
        "În mar., 5 nov. 2024 la 10:41, Support <support@example.com> a scris:",
        "Pe mar., 5 nov. 2024 la 10:41, Support <support@example.com> a scris:",
        "Op di 5 nov 2024 om 10:41 schreef Support <support@example.com>:",
        "Op 5 nov. 2024, om 10:41 heeft Support <support@example.com> het volgende geschreven:",
        "Em ter., 5 de nov. de 2024 às 10:41, Support <support@example.com> escreveu:",
        "W dniu 5.11.2024 o 10:41, Support pisze:",
        "wt., 5 lis 2024 o 10:41 Support <support@example.com> napisał(a):",
        "Am 05.11.2024 um 10:41 schrieb Support <support@example.com>:",
        "Le mar. 5 nov. 2024 à 10:41, Support <support@example.com> a écrit :",
        "05.11.2024 10:41, Support <support@example.com>:",
    ],
)
def test_attribution_and_quote_are_removed(attribution: str) -> None:
    assert extract_reply(f"{REPLY}\n\n{attribution}\n\n{QUOTE}\n") == REPLY


@pytest.mark.parametrize(
    "attribution",
    [
        "On Tue, Nov 5, 2024 at 10:41 AM Support\n<support@example.com> wrote:",
        "On Tue, Nov 5, 2024 at 10:41 AM, Support\n<support@example.com>\nwrote:",
        "pt., 8 lis 2024 o 09:12 Support <support@example.com>\nnapisał(a):",
        "Pe mar., 5 nov. 2024 la 10:41, Support <support@example.com>\na scris:",
        '02.04.2012 14:20 пользователь "support@example.com" <\nsupport@example.com> написал:',
    ],
)
def test_wrapped_attribution_lines_are_removed(attribution: str) -> None:
    assert extract_reply(f"{REPLY}\n{attribution}\n\n{QUOTE}\n") == REPLY


def test_an_attribution_without_a_quote_below_still_ends_the_reply() -> None:
    text = f"{REPLY}\n\nOn Wed, May 18, 2016 at 11:10 PM Steven <s@example.com>\nwrote:\n\nOld text"
    assert extract_reply(text) == REPLY


@pytest.mark.parametrize(
    "header",
    [
        "From: Support <support@example.com>\nSent: Tuesday, November 5, 2024 10:41 AM\n"
        "To: Ana <ana@magazin.ro>\nSubject: RE: [#12] Payments",
        "*From:* Support [mailto:support@example.com]\n*Sent:* Tuesday, November 5, 2024\n"
        "*To:* ana@magazin.ro\n*Subject:* [#12] Payments",
        "Van: Support <support@example.com>\nVerzonden: dinsdag 5 november 2024 10:41\n"
        "Aan: Jan <jan@winkel.nl>\nOnderwerp: RE: [#12] Betalingen",
        "De: Support <support@example.com>\nEnviado: terça-feira, 5 de novembro de 2024 10:41\n"
        "Para: Ana <ana@loja.com.br>\nAssunto: RE: [#12] Pagamentos",
        "Od: Support <support@example.com>\nWysłano: wtorek, 5 listopada 2024 10:41\n"
        "Do: Jan <jan@sklep.pl>\nTemat: RE: [#12] Płatności",
        "De la: Support <support@example.com>\nTrimis: marți, 5 noiembrie 2024 10:41\n"
        "Către: Ana <ana@magazin.ro>\nSubiect: RE: [#12] Plăți",
        "________________________________\nFrom: Support <support@example.com>\n"
        "Sent: Tuesday, November 5, 2024\nTo: Ana",
        "-----Original Message-----\nFrom: Support <support@example.com>\nSent: Tuesday",
        "-----Mesaj original-----\nDe la: Support\nTrimis: marți",
        "-----Oorspronkelijk bericht-----\nVan: Support\nVerzonden: dinsdag",
        "-----Mensagem original-----\nDe: Support\nEnviada em: terça-feira",
        "-----Wiadomość oryginalna-----\nOd: Support\nWysłano: wtorek",
        "---------- Forwarded message ---------\nFrom: Carrier <noreply@carrier.example>",
        "Begin forwarded message:\n\nFrom: Carrier <noreply@carrier.example>",
        "-------- Forwarded Message --------\nSubject: Rates",
    ],
)
def test_quoted_header_blocks_end_the_reply(header: str) -> None:
    text = f"{REPLY}\n\n{header}\n\nOld message text.\n"
    assert extract_reply(text) == REPLY


def test_a_header_block_right_under_the_reply_ends_it() -> None:
    text = f"{REPLY}\n________________________________\nFrom: Support\nSent: Tuesday\n\nOld"
    assert extract_reply(text) == REPLY


def test_a_lone_header_like_line_is_part_of_the_reply() -> None:
    text = "Please forward this.\nTo: all staff in the warehouse\n\nThanks for checking."
    assert extract_reply(text) == text


@pytest.mark.parametrize(
    "signature",
    [
        "-- \nAna Popescu\nMagazin Exemplu SRL",
        "--\nAna",
        "__\nAna Popescu",
        "Sent from my iPhone",
        "Trimis de pe iPhone-ul meu",
        "Verzonden vanaf mijn iPhone",
        "Enviado do meu iPhone",
        "Wysłane z mojego iPhone'a",
        "Sent from Yahoo Mail on Android",
        "Get Outlook for iOS",
    ],
)
def test_signatures_are_removed(signature: str) -> None:
    assert extract_reply(f"{REPLY}\n\n{signature}\n") == REPLY


def test_strip_quotes_keeps_the_signature() -> None:
    attribution = "On 5 Nov 2024, Support <s@example.com> wrote:"
    text = f"{REPLY}\n\nSent from my iPhone\n\n{attribution}\n\n{QUOTE}"
    assert strip_quotes(text) == f"{REPLY}\n\nSent from my iPhone"
    assert extract_reply(text) == REPLY


def test_dashes_inside_a_line_or_opening_a_list_are_not_a_signature() -> None:
    text = (
        "The prizes:\n\n-- a gift card\n-- a mug\n-- a T-shirt\n-- a cap\n-- a pen\n"
        "-- a bag\n-- a book\n\nAnd a fix -- not a signature.\n\nkthxbai"
    )
    assert extract_reply(text) == text


def test_a_sentence_starting_with_sent_from_is_kept() -> None:
    text = "Here is the file.\n\nSent from my desk, which is easier than my phone."
    assert extract_reply(text) == text


def test_the_senders_sign_off_is_a_signature_when_the_sender_is_known() -> None:
    text = "It is 'example.com'. Please let me know what you see.\n\nThank you,\nNoam"
    assert extract_reply(text, sender="Noam <noam@example.com>") == (
        "It is 'example.com'. Please let me know what you see."
    )
    assert extract_reply(text) == text  # without the sender, nothing says Noam signs it


def test_a_sentence_mentioning_the_sender_is_not_a_signature() -> None:
    text = "Hello,\n\nMy name is Ion Popescu and my order 7731 never arrived, can you check it?"
    assert extract_reply(text, sender="Ion Popescu <ion@example.ro>") == text


def test_interleaved_answers_are_kept_without_the_quotes() -> None:
    text = (
        "On Tue, Apr 29, 2014 at 4:22 PM, Support <s@example.com> wrote:\n\n"
        "> Which theme do you use?\n\nThe Black Friday one.\n\n> Since when?\n\n"
        "Since Monday.\n"
    )
    assert extract_reply(text) == "The Black Friday one.\n\nSince Monday."


def test_crlf_line_endings_are_understood() -> None:
    text = f"{REPLY}\r\n\r\nOn 5 Nov 2024, Support <s@example.com> wrote:\r\n\r\n> old\r\n"
    assert extract_reply(text) == REPLY


def test_fragments_mark_quotes_signatures_and_hidden_text() -> None:
    text = f"{REPLY}\n\nOn 5 Nov 2024, Support <s@example.com> wrote:\n\n{QUOTE}\n\n-- \nAna\n"
    fragments = split_fragments(text)  # the blank line above the signature is its own
    assert [f.quoted for f in fragments] == [False, True, False, False]
    assert [f.signature for f in fragments] == [False, False, False, True]
    assert [f.hidden for f in fragments] == [False, True, True, True]
    assert fragments[1].content.startswith("On 5 Nov 2024")
    assert fragments[3].content == "-- \nAna"


# -- HTML replies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "quoted",
    [
        '<div class="gmail_quote"><div class="gmail_attr">On Tue, Support wrote:</div>'
        '<blockquote class="gmail_quote">Old text</blockquote></div>',
        '<div class="moz-cite-prefix">On 05.11.2024 10:41, Support wrote:</div>'
        '<blockquote type="cite">Old text</blockquote>',
        '<div id="divRplyFwdMsg"><hr><b>De la:</b> Support<br><b>Trimis:</b> marți</div>'
        "<div>Old text</div>",
        '<span id="OLK_SRC_BODY_SECTION"><div>From: Support<br>Date: Tue</div>Old text</span>',
        '<hr id="stopSpelling">Date: Tue<br>From: support@example.com<br>Old text',
        "<hr><b>Van:</b> Support<br><b>Verzonden:</b> dinsdag<br><b>Aan:</b> Jan<br>Old text",
        '<p>26.06.2014, 14:41, "Support" &lt;s@example.com&gt;:</p>'
        "<blockquote>Old text</blockquote>",
    ],
)
def test_html_quotes_are_dropped_by_their_markup(quoted: str) -> None:
    html = (
        f"<html><body><div>Thanks, the new theme</div><div>works now.</div>{quoted}</body></html>"
    )
    assert extract_reply("", html) == "Thanks, the new theme\nworks now."


def test_html_is_only_used_when_it_marks_quotes_or_the_text_is_empty() -> None:
    html = "<p>Rendered <b>differently</b></p>"
    assert extract_reply("Plain version", html) == "Plain version"
    assert extract_reply("", html) == "Rendered differently"


# -- speed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "On " + "x " * 200_000 + "\n" * 5 + "wrote:",
        ("On Tue, Nov 5, 2024 " * 50 + "\n") * 3000,
        "> " + "a" * 300_000 + ":\n" + "b:\n" * 10_000,
        ("From: x\nTo: y\n\n" * 2500) + ("-" * 1000 + "\n") * 200,
        "\n".join(f"-item {i}\n" for i in range(8_000)),
        ("text\n" + "> quote\n" + "Sent from my phone\n\n") * 2500,
        ("x" * 390 + ":\n> quote\n") * 2000,
        ("a" * 150 + "@" + "b" * 150 + ":\n> quote\n") * 2000,
    ],
    ids=[
        "long-on-line",
        "many-on-lines",
        "long-colon-line",
        "many-headers",
        "many-dashes",
        "alternating",
        "colon-lines-over-quotes",
        "at-signs-over-quotes",
    ],
)
def test_pathological_bodies_are_fast(text: str) -> None:
    """Sizes where anything quadratic would take many seconds; this thread's CPU time, so
    neither a busy machine nor another thread of the test process (a gateway's loops left
    by an earlier test) fails the test."""
    started = time.thread_time()
    extract_reply(text, sender="Noam <noam@example.com>")
    assert time.thread_time() - started < 1.0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab >-_:\n\r@<.*On wrote Van:De:")), max_size=400))
def test_extract_reply_never_raises_and_only_keeps_text_it_was_given(text: str) -> None:
    reply = extract_reply(text, sender="On <a@b.c>")
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    for line in reply.split("\n"):
        assert line.strip() in normalised or " " in line  # joined attributions only


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                "<div>",
                "</div>",
                "<blockquote type=cite>",
                "</blockquote>",
                '<div class="gmail_quote">',
                "<br>",
                "<hr>",
                "<p>",
                "</p>",
                "<a href='https://x'>",
                "</a>",
                "<script>",
                "</script>",
                "<b>From:</b> x",
                "Van: y",
                "text",
                "&amp;",
                "&#",
                "<!--",
                "-->",
                "<",
                ">",
                "\n",
                "<img",
                ' width="1">',
                "<ol><li>",
                "<pre>",
                "</pre>",
                "<style>",
                "</style>",
            ]
        ),
        max_size=60,
    ).map("".join)
)
def test_html_replies_never_raise(html: str) -> None:
    reply = extract_reply("", html)
    assert "\x00" not in reply


@pytest.mark.parametrize(
    ("text", "sender"),
    [
        ("Nu merge plata.\n\nCu stimă,\nȘtefan Țurcanu", "Magazinul Verde stefan.turcanu@mv.ro"),
        ("Nu merge plata.\n\nCu stimă,\nȘtefan", "Stefan Turcanu stefan@mv.ro"),
        ("Nie działa.\n\nPozdrawiam,\nŁukasz", "Lukasz Wisniewski lukasz@sz.pl"),
        ("Não funciona.\n\nObrigado,\nJoão", "joao@ldm.pt"),
    ],
)
def test_a_sign_off_names_the_sender_with_or_without_diacritics(text: str, sender: str) -> None:
    assert extract_reply(text, sender=sender) == text.split("\n\n", maxsplit=1)[0]


def test_a_role_address_names_nobody() -> None:
    text = "Werkt niet.\n\nGroeten,\nInfo"
    assert extract_reply(text, sender="info@fietsenwinkel.nl") == text


def test_a_closing_paragraph_about_a_confidential_parcel_is_not_a_disclaimer() -> None:
    text = (
        "Hi,\n\nOrder 1043 never arrived.\n\n"
        "The parcel was marked confidential and the recipient at the depot refused it."
    )
    assert extract_reply(text, sender="Sarah Mitchell sarah@brightleaf.co.uk") == text
