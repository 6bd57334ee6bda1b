"""How long one mail with one huge value takes: ``python -m bench.huge_values``.

    python -m bench.huge_values                        # 100,000 characters, every place
    python -m bench.huge_values --size 40000 --places subject,html --all

Builds a mail for each pair of a place (a header, a body, a bounce's notice) and a shape
(a long run of one character or of a short piece: "<b x=", "\\n>", quoted semicolons…),
runs it through ``Pipeline.prepare`` and ``Pipeline.commit`` on a scratch gateway, and
prints the pairs that took longer than ``--slow`` seconds (with ``--all``, every pair).
Work that grows with the square of a value's length shows here as seconds; what grows
with the length stays below a second at 100,000 characters (bench/README.md, "Huge
values").
"""

from __future__ import annotations

import argparse
import time

from bench.ingest import scratch_settings
from bench.smtp_load import discard, run_folder

SHAPES = {
    "letters": "a",
    "letters and spaces": "a ",
    "at signs": "@",
    "angle brackets": "<",
    "parentheses": "(",
    "quotes": '"',
    "backslashes": "\\",
    "dots": ".",
    "digits": "1",
    "semicolons": ";",
    "commas": ",",
    "colons": ":",
    "encoded words": "=?utf-8?q?a?=",
    "encoded words and spaces": "=?utf-8?q?a?= ",
    "<a": "<a",
    "a@": "a@",
    "[#": "[#",
    "Re: ": "Re: ",
    "http://": "http://",
    "> ": "> ",
    "new lines": "\n",
    "\\n>": "\n>",
    "signature markers": "-- \n",
    "diacritics": "ă",
    "<b>": "<b>",
    "<b x=": "<b x=",
    "<!--": "<!--",
    "<!--a>": "<!--a>",
    "<![CDATA[x]>": "<![CDATA[x]>",
    "&": "&",
}

PLACES = (
    "subject",
    "from name",
    "from address",
    "to",
    "cc",
    "message-id",
    "references",
    "in-reply-to",
    "content-type",
    "filename",
    "x-mailer",
    "date",
    "auto-submitted",
    "content-language",
    "plain",
    "html",
    "bounce notice",
    "delivery report",
)

_DAEMON = "Mail Delivery System <MAILER-DAEMON@mx.magazin.ro>"


def mail(place: str, value: str, number: int) -> bytes:
    """A mail with ``value`` at ``place``; ``number`` makes its Message-ID unique."""
    headers = {
        "From": "Ana <ana@magazin.ro>",
        "To": "support@localhost",
        "Subject": "Plata nu merge",
        "Message-ID": f"<huge{number}@magazin.ro>",
        "Date": "Mon, 23 Nov 2026 10:00:00 +0000",
    }
    one_line = value.replace("\n", " ")
    header_names = {
        "subject": "Subject",
        "to": "To",
        "cc": "Cc",
        "message-id": "Message-ID",
        "references": "References",
        "in-reply-to": "In-Reply-To",
        "x-mailer": "X-Mailer",
        "date": "Date",
        "auto-submitted": "Auto-Submitted",
        "content-language": "Content-Language",
        "from address": "From",
    }
    if place in header_names:
        headers[header_names[place]] = one_line
    elif place == "from name":
        headers["From"] = f"{one_line} <ana@magazin.ro>"
    elif place in ("bounce notice", "delivery report"):
        headers.update(From=_DAEMON, Subject="Undelivered Mail Returned to Sender")
    head = "".join(f"{name}: {text}\r\n" for name, text in headers.items())
    head += "MIME-Version: 1.0\r\n"
    if place == "html":
        return f"{head}Content-Type: text/html; charset=utf-8\r\n\r\n{value}".encode()
    if place == "filename":
        return (
            f'{head}Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
            f'Content-Type: application/pdf; name="{one_line}"\r\n'
            f'Content-Disposition: attachment; filename="{one_line}"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n"
        ).encode()
    if place == "delivery report":
        return (
            f"{head}Content-Type: multipart/report; report-type=delivery-status;"
            f' boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n{value}\r\n'
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx\r\n"
            f"\r\nFinal-Recipient: rfc822; {one_line[:5000]}\r\nAction: failed\r\n"
            f"Status: 5.1.1\r\nDiagnostic-Code: smtp; {one_line}\r\n--b\r\n"
            "Content-Type: message/rfc822\r\n\r\nFrom: support@localhost\r\n"
            f"Message-ID: <{one_line}>\r\nSubject: x\r\n\r\n{value}\r\n--b--\r\n"
        ).encode()
    ctype = "text/plain; charset=utf-8"
    if place == "content-type":
        ctype += f"; x={one_line}"
    body = "Bună ziua,\nnu merge.\n"
    if place == "plain":
        body = value
    elif place == "bounce notice":
        body = f"Your message could not be delivered to one or more recipients.\n\n{value}\n"
    return f"{head}Content-Type: {ctype}\r\n\r\n{body}".encode()


def main() -> None:
    from mailgate.app import build_gateway
    from mailgate.values import Arrival, Envelope, Source

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="characters per value")
    parser.add_argument("--places", default=",".join(PLACES), help="comma-separated")
    parser.add_argument("--slow", type=float, default=0.3, help="seconds worth printing")
    parser.add_argument("--all", action="store_true", help="print every pair")
    parser.add_argument("--url", default=None, help="a PostgreSQL store instead of SQLite")
    args = parser.parse_args()

    work = run_folder("huge-values-")
    gateway = build_gateway(scratch_settings(work, args.url))
    print(f"values of {args.size:,} characters; prepare and commit, seconds")
    print("| place | shape | prepare s | commit s | outcome |")
    print("|---|---|---:|---:|---|")
    slowest, number = 0.0, 0
    for place in args.places.split(","):
        for shape, piece in SHAPES.items():
            number += 1
            value = (piece * (args.size // len(piece) + 1))[: args.size]
            daemon = place in ("bounce notice", "delivery report")
            envelope = Envelope("<>" if daemon else "ana@magazin.ro", ("support@localhost",))
            arrival = Arrival(mail(place, value, number), envelope, Source("pipe"), gateway.clock())
            started = time.perf_counter()
            prepared = gateway.pipeline.prepare(arrival)
            prepared_at = time.perf_counter()
            outcome = gateway.pipeline.commit([prepared])[0]
            done = time.perf_counter()
            took = done - started
            slowest = max(slowest, took)
            if args.all or took >= args.slow:
                print(
                    f"| {place} | {shape!r} | {prepared_at - started:.2f} "
                    f"| {done - prepared_at:.2f} | {outcome.kind} |"
                )
    print(f"{number} mails; the slowest took {slowest:.2f} s")
    gateway.close()
    discard(work)


if __name__ == "__main__":
    main()
