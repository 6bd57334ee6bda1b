"""The benchmarks' mail corpus: one generator for every ingest, memory and instances run.

    python -m bench.generate --mails 1000 [--seed 1] OUT.mbox | OUT/   (a folder of .eml)

Realistic mixed mail as a helpdesk receives it from shop owners: five languages (en, ro,
nl, pt, pl, with their real diacritics in bodies, subjects and display names, so headers
are RFC 2047-encoded), 70 % new requests and 30 % replies to earlier generated mails,
threaded by ``In-Reply-To``/``References`` only (no ``[#ID]`` in the subject: the threader
has to find the parent by Message-ID), a fifth as HTML ``multipart/alternative``, and
about 5 % carrying a 50-200 KB PNG screenshot (a valid PNG of incompressible pixels, as a
real screenshot's compressed data is). Everything comes from ``random.Random(seed)`` and
a fixed clock, MIME boundaries included, so a seed always gives the same bytes.
"""

from __future__ import annotations

import argparse
import random
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime
from html import escape
from pathlib import Path

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TO = "support@localhost"
REPLY_SHARE = 0.3
HTML_SHARE = 0.2
SCREENSHOT_SHARE = 0.05
# Delivery, payment, invoice (a confidential request: held for unverified senders, as
# rare as in a real helpdesk), log-in, images.
SUBJECT_WEIGHTS = (35, 30, 4, 11, 20)


@dataclass(frozen=True, slots=True)
class Language:
    names: tuple[str, ...]
    subjects: tuple[str, ...]
    sentences: tuple[str, ...]
    replies: tuple[str, ...]
    greeting: str
    closing: str
    reply_prefix: str


LANGUAGES: dict[str, Language] = {
    "en": Language(
        names=("Emma Clarke", "Oliver Hughes", "Sophie Turner", "Jack O'Neill"),
        subjects=(
            "Order {n} was not delivered",
            "Payment failed at checkout",
            "Invoice {n} shows the wrong VAT",
            "Cannot log in to the admin panel",
            "Product images are not loading",
        ),
        sentences=(
            "Order {n} was paid a week ago but the customer has not received anything.",
            "The checkout page shows an error when customers choose card payment.",
            "Since this morning the product images on the category pages are broken.",
            "Could you please check why the shipping cost is added twice in the cart?",
            "We changed nothing in the theme, it simply stopped working after the update.",
            "The courier says the parcel was returned to the warehouse, which is odd.",
        ),
        replies=(
            "Thanks for the quick answer, but the problem is still there.",
            "I tried again as you suggested and it worked, thank you!",
            "Here is the screenshot you asked for; the error appears after the second step.",
        ),
        greeting="Hello,",
        closing="Kind regards,",
        reply_prefix="Re:",
    ),
    "ro": Language(
        names=("Ana Popescu", "Ștefan Ionescu", "Ioana Căpraru", "Mihai Țurcanu"),
        subjects=(
            "Comanda {n} nu a fost livrată",
            "Plata cu cardul nu funcționează",
            "Factura {n} are TVA greșit",
            "Nu mă pot autentifica în panoul de administrare",
            "Imaginile produselor nu se încarcă",
        ),
        sentences=(
            "Comanda {n} a fost plătită acum o săptămână, dar clienta încă așteaptă coletul.",
            "Pagina de finalizare a comenzii afișează o eroare la plata cu cardul.",
            "De azi dimineață imaginile din categorii nu mai apar deloc.",
            "Vă rog să verificați de ce costul de livrare apare de două ori în coș.",
            "Nu am schimbat nimic în temă, pur și simplu s-a oprit după actualizare.",
            "Curierul spune că pachetul s-a întors în depozit, ceea ce e ciudat.",
        ),
        replies=(
            "Mulțumesc pentru răspuns, dar problema persistă.",
            "Am încercat din nou cum ați sugerat și a mers, mulțumesc frumos!",
            "Atașez captura de ecran cerută; eroarea apare după al doilea pas.",
        ),
        greeting="Bună ziua,",
        closing="Cu stimă,",
        reply_prefix="Re:",
    ),
    "nl": Language(
        names=("Sanne de Vries", "Daan Jansen", "Eline van Dijk", "Thijs Bakker"),
        subjects=(
            "Bestelling {n} is niet geleverd",
            "Betaling mislukt bij het afrekenen",
            "Factuur {n} toont de verkeerde btw",
            "Ik kan niet inloggen in het beheerpaneel",
            "Productafbeeldingen laden niet",
        ),
        sentences=(
            "Bestelling {n} is een week geleden betaald, maar de klant heeft niets ontvangen.",
            "De afrekenpagina geeft een foutmelding als klanten met een creditcard betalen.",
            "Sinds vanochtend zijn de productfoto's op de categoriepagina's kapot.",
            "Kunt u nagaan waarom de verzendkosten twee keer in het winkelmandje staan?",
            "We hebben niets aan het thema veranderd; het werkt niet meer sinds de update.",
            "De koerier zegt dat het pakket terug is naar het magazijn, dat is vreemd.",
        ),
        replies=(
            "Bedankt voor het snelle antwoord, maar het probleem is er nog steeds.",
            "Ik heb het opnieuw geprobeerd zoals u voorstelde en het werkt, bedankt!",
            "Hierbij de schermafdruk waar u om vroeg; de fout verschijnt na de tweede stap.",
        ),
        greeting="Goedendag,",
        closing="Met vriendelijke groet,",
        reply_prefix="Re:",
    ),
    "pt": Language(
        names=("João Gonçalves", "Inês Simões", "Conceição Araújo", "Luís Magalhães"),
        subjects=(
            "A encomenda {n} não foi entregue",
            "O pagamento falhou na finalização",
            "A fatura {n} tem o IVA errado",
            "Não consigo entrar no painel de administração",
            "As imagens dos produtos não carregam",
        ),
        sentences=(
            "A encomenda {n} foi paga há uma semana, mas a cliente ainda não recebeu nada.",
            "A página de pagamento mostra um erro quando os clientes escolhem cartão.",
            "Desde esta manhã as imagens das categorias deixaram de aparecer.",
            "Podem verificar por que razão os portes aparecem duas vezes no carrinho?",
            "Não mudámos nada no tema; simplesmente deixou de funcionar após a atualização.",
            "A transportadora diz que a encomenda voltou ao armazém, o que é estranho.",
        ),
        replies=(
            "Obrigado pela resposta rápida, mas o problema continua.",
            "Tentei novamente como sugeriram e funcionou, muito obrigada!",
            "Envio a captura de ecrã pedida; o erro aparece depois do segundo passo.",
        ),
        greeting="Bom dia,",
        closing="Com os melhores cumprimentos,",
        reply_prefix="Re:",
    ),
    "pl": Language(
        names=("Małgorzata Wójcik", "Łukasz Żółkiewski", "Agnieszka Dąbrowska", "Paweł Kuźniar"),
        subjects=(
            "Zamówienie {n} nie zostało dostarczone",
            "Płatność nie działa przy składaniu zamówienia",
            "Faktura {n} ma błędną stawkę VAT",
            "Nie mogę się zalogować do panelu",
            "Zdjęcia produktów się nie ładują",
        ),
        sentences=(
            "Zamówienie {n} zostało opłacone tydzień temu, a klientka nadal nic nie dostała.",
            "Strona płatności pokazuje błąd, gdy klienci wybierają kartę.",
            "Od dzisiejszego ranka zdjęcia w kategoriach w ogóle się nie wyświetlają.",
            "Czy możecie sprawdzić, dlaczego koszt wysyłki pojawia się w koszyku dwa razy?",
            "Niczego nie zmienialiśmy w szablonie, po prostu przestało działać po aktualizacji.",
            "Kurier twierdzi, że paczka wróciła do magazynu, co jest dziwne.",
        ),
        replies=(
            "Dziękuję za szybką odpowiedź, ale problem nadal występuje.",
            "Spróbowałam ponownie, tak jak radziliście, i zadziałało, dziękuję!",
            "Załączam zrzut ekranu, o który prosiliście; błąd pojawia się po drugim kroku.",
        ),
        greeting="Dzień dobry,",
        closing="Z poważaniem,",
        reply_prefix="Odp:",
    ),
}


@dataclass(frozen=True, slots=True)
class Mail:
    """One generated mail: the envelope sender and the bytes as an MTA would hand them over."""

    sender: str
    raw: bytes
    reply: bool
    html: bool
    screenshot: bool


@dataclass(frozen=True, slots=True)
class _Sent:
    message_id: str
    references: str
    sender: str
    name: str
    lang: str
    subject: str
    text: str


def generate(count: int, seed: int = 1) -> Iterator[Mail]:
    """``count`` mails, the same ones for the same ``seed``."""
    rng = random.Random(seed)
    earlier: list[_Sent] = []
    for n in range(count):
        parent = rng.choice(earlier[-500:]) if earlier and rng.random() < REPLY_SHARE else None
        if parent is not None:  # the shop owner answers on their own thread
            lang, sender, name = parent.lang, parent.sender, parent.name
        else:
            lang = rng.choice(list(LANGUAGES))
            sender = f"owner{rng.randrange(600)}@shop{rng.randrange(300)}.{lang}.example"
            name = rng.choice(LANGUAGES[lang].names)
        language = LANGUAGES[lang]
        order = 10_000 + rng.randrange(90_000)
        if parent is None:
            subject = rng.choices(language.subjects, SUBJECT_WEIGHTS)[0].format(n=order)
            said = rng.sample(language.sentences, rng.randint(2, 5))
        else:
            subject = f"{language.reply_prefix} {_unprefixed(parent.subject)}"
            said = [rng.choice(language.replies)]
        first = name.split()[0]
        text = "\n\n".join(s.format(n=order) for s in said)
        body = f"{language.greeting}\n\n{text}\n\n{language.closing}\n{first}\n"
        if parent is not None:
            quoted = "\n".join("> " + line for line in parent.text.splitlines())
            body += f"\n{format_datetime(NOW)}, {parent.name} <{parent.sender}>:\n{quoted}\n"

        msg = EmailMessage()
        msg["From"] = f"{name} <{sender}>"
        msg["To"] = f"Support <{TO}>"
        msg["Subject"] = subject
        msg["Date"] = format_datetime(NOW + timedelta(seconds=37 * n))
        msg["Message-ID"] = message_id = (
            f"<{seed}.{n}.{rng.randrange(1 << 32):x}@mail.{lang}.example>"
        )
        references = ""
        if parent is not None:
            references = f"{parent.references} {parent.message_id}".strip()
            msg["In-Reply-To"] = parent.message_id
            msg["References"] = references
        msg.set_content(body)
        html = rng.random() < HTML_SHARE
        if html:
            paragraphs = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n\n") if p.strip())
            msg.add_alternative(
                f'<html><body style="font-family:Arial">{paragraphs}</body></html>', subtype="html"
            )
        screenshot = rng.random() < SCREENSHOT_SHARE
        if screenshot:
            size = rng.randint(50_000, 200_000)
            msg.add_attachment(
                png(rng, size), maintype="image", subtype="png", filename=f"screenshot-{n}.png"
            )
        _fix_boundaries(msg, f"{seed}.{n}")
        earlier.append(_Sent(message_id, references, sender, name, lang, subject, text))
        yield Mail(sender, msg.as_bytes(policy=SMTP_POLICY), parent is not None, html, screenshot)


def _unprefixed(subject: str) -> str:
    for prefix in ("Re: ", "Odp: "):
        subject = subject.removeprefix(prefix)
    return subject


def png(rng: random.Random, size: int) -> bytes:
    """A valid RGB PNG of about ``size`` bytes (noise: a screenshot's compressed data)."""
    width = 480
    height = max(1, size // (width * 3))
    rows = b"".join(b"\0" + rng.randbytes(width * 3) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows, 1))
        + chunk(b"IEND", b"")
    )


def _fix_boundaries(msg: EmailMessage, tag: str) -> None:
    """Set every multipart's boundary; the email package draws them from ``random``."""
    for depth, part in enumerate(p for p in msg.walk() if p.is_multipart()):
        part.set_boundary(f"=_bench_{tag}_{depth}")


def write_mbox(path: Path, count: int, seed: int = 1) -> list[Mail]:
    """``count`` generated mails as an mbox ("From " lines of the body quoted mboxrd-style).

    Returns the mails without their bytes (kept small for the memory benchmark)."""
    stamp = NOW.strftime("%a %b %d %H:%M:%S %Y").encode()
    written = []
    with path.open("wb") as out:
        for mail in generate(count, seed):
            raw = mail.raw.replace(b"\r\n", b"\n").replace(b"\nFrom ", b"\n>From ")
            out.write(b"From " + mail.sender.encode() + b" " + stamp + b"\n" + raw + b"\n")
            written.append(replace(mail, raw=b""))
    return written


def write_folder(path: Path, count: int, seed: int = 1) -> list[Mail]:
    """``count`` generated mails as ``NNNNNN.eml`` files in ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for n, mail in enumerate(generate(count, seed)):
        (path / f"{n:06d}.eml").write_bytes(mail.raw)
        written.append(replace(mail, raw=b""))
    return written


def describe(mails: list[Mail]) -> str:
    return (
        f"{len(mails)} mails: {sum(m.reply for m in mails)} replies,"
        f" {sum(m.html for m in mails)} HTML, {sum(m.screenshot for m in mails)} screenshots"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="an .mbox file, or a folder for .eml files")
    parser.add_argument("--mails", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    write = write_mbox if args.out.suffix == ".mbox" else write_folder
    mails = write(args.out, args.mails, args.seed)
    print(f"{args.out}: {describe(mails)}")


if __name__ == "__main__":
    main()
