"""How fast the parse stage reads mail: ``python bench/parse_speed.py [--repeat N]``.

Times ``parse_mail`` over every file of the public corpus, over a synthetic 5 KB
plain-text reply and over a mail carrying a 150 KB screenshot, and prints mails per
second. For comparison it also times mail-parser's full ``parse_from_bytes`` (what the
stack would cost if we ran it) and the stdlib parse alone (the floor under both).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import email
import os
import random
import statistics
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mailparser

from mailgate.errors import ParseFailure
from mailgate.parse import parse_mail

CORPUS = Path(
    os.environ.get("MAILGATE_CORPUS") or Path(__file__).resolve().parents[2] / "shared" / "corpus"
)


def typical_reply() -> bytes:
    """A 5 KB plain-text reply: Gmail-style headers, wrapped paragraphs, a quote."""
    rng = random.Random(5)
    words = [
        "comanda",
        "plata",
        "cardul",
        "produsul",
        "livrare",
        "factura",
        "magazin",
        "client",
        "eroare",
        "checkout",
        "order",
        "payment",
        "invoice",
        "shipping",
        "theme",
        "error",
    ]

    def paragraph(count: int) -> str:
        return textwrap.fill(" ".join(rng.choice(words) for _ in range(count)), width=72)

    headers = (
        "Return-Path: <ana@magazin.ro>\nReceived: from mail-wr1.google.com (mail-wr1.google.com "
        "[209.85.221.41]) by mx.example.com with ESMTPS id 4F2; Tue, 5 Nov 2024 11:18:10 +0200\n"
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=magazin.ro; s=google; "
        "h=to:subject:message-id:date:from:in-reply-to:references:mime-version; bh=abc=; b=def=\n"
        "MIME-Version: 1.0\nReferences: <a1@example.com> <a2@example.com>\n"
        "In-Reply-To: <a2@example.com>\nFrom: Ana Popescu <ana@magazin.ro>\n"
        "Date: Tue, 5 Nov 2024 11:18:09 +0200\nMessage-ID: <CAF3kq7f2@mail.gmail.com>\n"
        "Subject: Re: [#12] =?UTF-8?Q?Pl=C4=83=C8=9Bile_nu_merg?=\n"
        'To: Support <support@example.com>\nContent-Type: text/plain; charset="UTF-8"\n'
        "Content-Transfer-Encoding: 8bit\n\n"
    )
    reply = "\n\n".join(paragraph(50) for _ in range(3))
    quoted = "\n>\n".join(
        "\n".join("> " + line for line in paragraph(60).split("\n")) for _ in range(4)
    )
    attribution = "Pe mar., 5 nov. 2024 la 10:41, Support <support@example.com> a scris:"
    raw = f"{headers}{reply}\n\nMulțumesc,\nAna\n\n{attribution}\n\n{quoted}\n"
    while len(raw.encode()) < 5000:  # top the quote up to 5 KB with more of the thread
        raw += "\n".join("> " + line for line in paragraph(12).split("\n")) + "\n"
    return raw.encode()


def screenshot_mail() -> bytes:
    """A short HTML + text mail with a 150 KB PNG attached, as phones send them."""
    image = base64.encodebytes(random.Random(1).randbytes(150_000)).decode()
    text = "The product page looks broken, see the screenshot."
    return (
        "From: Priya <priya@shop.example>\nTo: support@example.com\nSubject: Screenshot\n"
        "Date: Fri, 8 Nov 2024 10:05:47 -0500\nMessage-ID: <shot.1@shop.example>\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="outer"\n\n--outer\n'
        'Content-Type: multipart/alternative; boundary="inner"\n\n--inner\n'
        f"Content-Type: text/plain; charset=utf-8\n\n{text}\n\n--inner\n"
        f"Content-Type: text/html; charset=utf-8\n\n<div>{text}</div>\n--inner--\n\n--outer\n"
        'Content-Type: image/png; name="shot.png"\n'
        'Content-Disposition: attachment; filename="shot.png"\n'
        f"Content-Transfer-Encoding: base64\n\n{image}\n--outer--\n"
    ).encode()


def corpus_mails() -> list[bytes]:
    skip = {"README.md", "expectations.json"}
    return [p.read_bytes() for p in sorted(CORPUS.rglob("*")) if p.is_file() and p.name not in skip]


def timed(read: Callable[[bytes], object], mails: list[bytes], repeat: int) -> list[float]:
    """Seconds per pass over ``mails``, one figure per repeat."""
    passes = []
    for _ in range(repeat):
        started = time.process_time()  # CPU time: other processes on the box do not count
        for raw in mails:
            with contextlib.suppress(ParseFailure):  # the corpus's empty files
                read(raw)
        passes.append(time.process_time() - started)
    return passes


def report(label: str, mails: list[bytes], seconds: list[float]) -> None:
    best, median = min(seconds), statistics.median(seconds)
    print(
        f"{label:<44} {len(mails):>5} mails  {best / len(mails) * 1000:8.3f} ms/mail (best)  "
        f"{median / len(mails) * 1000:8.3f} ms/mail (median)  {len(mails) / best:9.0f} mails/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    cases = {
        "5 KB plain-text reply": [typical_reply()] * 200,
        "150 KB screenshot mail": [screenshot_mail()] * 20,
        "public corpus (all files)": corpus_mails(),
    }
    readers: dict[str, Callable[[bytes], object]] = {
        "parse_mail": parse_mail,
        "mail-parser parse_from_bytes": mailparser.parse_from_bytes,
        "stdlib message_from_bytes only": email.message_from_bytes,
    }
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; 5 KB mail is "
        f"{len(cases['5 KB plain-text reply'][0])} bytes\n"
    )
    for case, mails in cases.items():
        for name, read in readers.items():
            if name.startswith("mail-parser") and case.startswith("public"):
                continue  # it raises on some corpus files; its figure is not ours anyway
            report(f"{case}: {name}", mails, timed(read, mails, args.repeat))
        print()


if __name__ == "__main__":
    main()
