"""Memory of the gateway: flat over many mails, bounded for a large attachment.

    python -m bench.memory flat --mails 100000 [--corpus PATH] [--url URL]
        [--every 10000] [--warmup 10000]
    python -m bench.memory attachment --mb 25 [--url URL] [--blobs files|database]

``flat`` imports ``--mails`` mails through the import path (``mailgate import``'s
``import_mails``: prepare in a child process, commit in batches) into a fresh store and
samples the resident set (VmRSS) of the importing process and of its prepare child after
every batch; it prints both every ``--every`` mails and their spread after the first
``--warmup`` (caches, connection pool, templates).
Without ``--corpus`` it writes an mbox of ``bench.generate`` mails first (five languages,
30 % replies, HTML, 5 % screenshots); any mbox, maildir or folder of .eml can be given.

``attachment`` starts ``mailgate serve`` as a process, sends one mail carrying an
attachment of ``--mb`` MB of random bytes over SMTP (the listener's size limit and the
attachment limits raised to fit it, so that it is stored), waits for the 250, and reads
the serve process's peak resident set (VmHWM) — the whole path: the DATA buffer,
parse, screen, DKIM check, keep, commit (the language detection model is loaded before
`serve` listens, so it is in the idle figure). The mail is not DKIM-signed: dkimpy's own
copies are not in the figure.
"""

from __future__ import annotations

import argparse
import os
import smtplib
import time
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from bench.generate import write_mbox
from bench.smtp_load import discard, free_port, rss_kb, run_folder, wait_listening


def flat(args: argparse.Namespace) -> None:
    from mailgate.app import build_gateway
    from mailgate.config import OutboundSettings, Settings, SmtpSettings, StoreSettings
    from mailgate.sources.importer import import_mails

    work = run_folder("mailgate-memory-")
    corpus = Path(args.corpus) if args.corpus else work / "corpus.mbox"
    if not args.corpus:
        started = time.monotonic()
        write_mbox(corpus, args.mails)
        print(f"wrote {args.mails} mails to {corpus} in {time.monotonic() - started:.0f} s")
    url = args.url or f"sqlite:///{work}/mailgate.db"
    settings = Settings(
        store=StoreSettings(url=url, raw=str(work / "raw"), attachments=str(work / "att")),
        smtp=SmtpSettings(addresses=("support@localhost",)),
        outbound=OutboundSettings(transport=f"maildir:{work}/out"),
    )
    gateway = build_gateway(settings)
    preparing = gateway.prepare_pool()
    # (mails so far, the importer's RSS, its prepare children's RSS together)
    samples: list[tuple[int, int, int]] = []
    done = 0
    started = time.monotonic()

    def progress(n: int) -> None:
        nonlocal done
        done += n
        children = sum(rss_kb(pid) for pid in preparing.pids())
        samples.append((done, rss_kb(), children))
        if done % args.every < n:
            elapsed = time.monotonic() - started
            print(
                f"  {done:>7} mails  RSS {rss_kb() / 1024:6.1f} MB"
                f"  prepare child {children / 1024:6.1f} MB  ({done / elapsed:.0f}/s)"
            )

    summary = import_mails(
        gateway.pipeline,
        corpus,
        clock=gateway.clock,
        preparing=preparing,
        batch_size=64,
        progress=progress,
    )
    preparing.close()
    gateway.close()
    discard(work)
    after_warmup = [s for s in samples if s[0] >= args.warmup] or samples
    print(f"{summary.total} mails ({dict(summary.counts)}) into {url}")
    for name, column in (("importer", 1), ("prepare child", 2)):
        values = [s[column] for s in after_warmup]
        low, high = min(values), max(values)
        if low:
            print(
                f"{name} RSS after {args.warmup:,} mails: min {low / 1024:.1f} MB,"
                f" max {high / 1024:.1f} MB, spread {100 * (high - low) / low:.1f} % of the"
                " minimum"
            )


def attachment(args: argparse.Namespace) -> None:
    import subprocess
    import sys

    work = run_folder("mailgate-attachment-")
    port = free_port()
    url = args.url or f"sqlite:///{work}/mailgate.db"
    size = int(args.mb * 1_000_000)
    config = work / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "{url}"\nblobs = "{args.blobs}"\n'
        f'raw = "{work}/raw"\nattachments = "{work}/att"\n'
        f"[smtp]\nport = {port}\nmax_message_size = {size * 2}\n"
        # Raised too, so the attachment is stored (blobs) and not only listed as too large.
        f"[attachments]\nmax_size = {size * 2}\nmax_total_size = {size * 2}\n"
        f'[outbound]\ntransport = "maildir:{work}/out"\n'
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--config", str(config), "serve"],
        stdout=subprocess.DEVNULL,
        stderr=(work / "serve.log").open("wb"),
    )
    try:
        wait_listening(port, timeout=60)
        idle = rss_kb(server.pid)
        msg = EmailMessage()
        msg["From"] = "Ana Pop <ana@magazin.ro>"
        msg["To"] = "support@localhost"
        msg["Subject"] = "Export complet"
        msg["Message-ID"] = "<big@magazin.ro>"
        msg.set_content("Atașez exportul complet al comenzilor.")
        msg.add_attachment(
            os.urandom(size), maintype="application", subtype="zip", filename="export.zip"
        )
        raw = msg.as_bytes(policy=SMTP_POLICY)
        del msg
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
            client.sendmail("ana@magazin.ro", ["support@localhost"], raw)
        took = time.monotonic() - started
        peak = rss_kb(server.pid, "VmHWM")
        print(
            f"{args.mb:g} MB attachment ({len(raw) / 1e6:.1f} MB mail), blobs={args.blobs},"
            f" {url.split(':')[0]}: 250 after {took:.1f} s; serve RSS idle"
            f" {idle / 1024:.0f} MB, peak {peak / 1024:.0f} MB"
        )
    finally:
        server.terminate()
        server.wait(60)
        discard(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("flat", help="RSS across many imported mails")
    one.add_argument("--mails", type=int, default=100_000)
    one.add_argument("--corpus", help="an mbox, maildir or folder of .eml to import instead")
    one.add_argument("--url", help="store URL (default: SQLite in a fresh folder under var/)")
    one.add_argument("--every", type=int, default=10_000, help="print RSS every N mails")
    one.add_argument("--warmup", type=int, default=10_000, help="mails before RSS counts")
    two = commands.add_parser("attachment", help="peak RSS of serve for one large attachment")
    two.add_argument("--mb", type=float, default=25)
    two.add_argument("--url", help="store URL (default: SQLite in a fresh folder under var/)")
    two.add_argument("--blobs", choices=("files", "database"), default="files")
    args = parser.parse_args()
    flat(args) if args.command == "flat" else attachment(args)


if __name__ == "__main__":
    main()
