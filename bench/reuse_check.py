"""The question every mail asks of the raw mails, on a grown store, with and without
revision 0006's index on ``raw_mails.message_id``.

    python -m bench.reuse_check [--raw-mails 300000] [--asks 200] [--mails 500]

A fresh SQLite store at the head revision gets ``--raw-mails`` rows of raw mails (written
directly, in one transaction); then ``store.lookups``' earlier-delivery statement (the same
delivery by its dedupe key, and an earlier, different mail with the same Message-ID) is
asked ``--asks`` times for new mails with the index dropped, and again once it is built
(the time the build takes is printed too: what the upgrade to revision 0006 costs).

With ``--mails N``, the pipeline then commits N generated mails (prepared beforehand, in
batches of 64) into that grown store, once without the index and once, with other mails,
with it: the writer's wall time per mail, which the scan adds to.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path

from sqlalchemy.dialects import sqlite

from store.db import Database
from store.lookups import _EARLIER_DELIVERY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-mails", type=int, default=300_000)
    parser.add_argument("--asks", type=int, default=200)
    parser.add_argument("--mails", type=int, default=0, help="commit this many mails too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="reuse-check-"))
    try:
        database = Database(f"sqlite:///{work}/mailgate.db")
        database.upgrade()
        database.dispose()
        connection = sqlite3.connect(work / "mailgate.db")
        connection.executemany(
            "INSERT INTO raw_mails (sha256, size, received_at, source, rcpt_tos, message_id,"
            " dedupe_key, outcome) VALUES (?, 1000, '2026-11-24 00:00:00.000000', 'smtp',"
            " 'support@localhost', ?, ?, 'message')",
            (
                (f"{i:064x}", f"m{i}@shop{i % 900}.example", f"{i:064x}")
                for i in range(args.raw_mails)
            ),
        )
        connection.commit()
        statement = str(_EARLIER_DELIVERY.compile(dialect=sqlite.dialect()))

        def ask(label: str) -> None:
            start = time.perf_counter()
            for i in range(args.asks):
                connection.execute(statement, (f"new{i}", f"new{i}@x.example", "duplicate"))
            ms = 1000 * (time.perf_counter() - start) / args.asks
            print(f"{label}: {ms:.3f} ms per mail at {args.raw_mails:,} raw mails")

        connection.execute("DROP INDEX ix_raw_mails_message_id")
        ask("without the index")
        start = time.perf_counter()
        connection.execute("CREATE INDEX ix_raw_mails_message_id ON raw_mails (message_id)")
        print(f"building the index (revision 0006): {time.perf_counter() - start:.1f} s")
        ask("with the index")
        if args.mails:
            _commits(work, connection, args.mails)
        connection.close()
    finally:
        shutil.rmtree(work)


_INDEX = "ix_raw_mails_message_id"


def _commits(work: Path, connection: sqlite3.Connection, mails: int) -> None:
    from bench.generate import generate
    from bench.ingest import scratch_settings
    from mailgate.app import build_gateway
    from mailgate.values import Arrival, Envelope, Source

    gateway = build_gateway(scratch_settings(work, None))
    try:
        for label, seed, ddl in (
            ("without the index", 11, f"DROP INDEX {_INDEX}"),
            ("with the index", 12, f"CREATE INDEX {_INDEX} ON raw_mails (message_id)"),
        ):
            connection.execute(ddl)
            prepared = [
                gateway.pipeline.prepare(
                    Arrival(mail.raw, Envelope(), Source("import"), gateway.clock())
                )
                for mail in generate(mails, seed)
            ]
            start = time.perf_counter()
            for first in range(0, len(prepared), 64):
                gateway.pipeline.commit(prepared[first : first + 64])
            ms = 1000 * (time.perf_counter() - start) / mails
            print(f"commit {label}: {ms:.1f} ms per mail (wall), {1000 / ms:.0f} mails/s")
    finally:
        gateway.close()


if __name__ == "__main__":
    main()
