"""What the reads a batch makes before its first mail cost: ``python -m bench.batch_reads
[--batches N] [--rounds R] [--url URL]``.

A batch's commit first asks seven statements (``StoreReader.look_ahead``: deliveries,
Message-IDs, shop users, referenced Message-IDs; ``sendlog.counted_ahead``: automatic
mails, recent mails, bounces), each for the three addresses or ids of a batch of three
mails, as 8 SMTP clients make. They run here ``N`` times on a fresh store (SQLite under
``var/`` unless ``--url`` names an empty database) two ways, in turns, and the CPU time
(``thread_time``) per statement of each is printed:

- ``sqlalchemy``: ``plain.execute`` of the statement with SQLAlchemy's expanding ``IN``
  (one placeholder per value), what the commit did before ``store.reads``;
- ``fetch``: ``store.reads.fetch`` of the statements the store runs now (the list as one
  parameter, straight through the driver).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from bench.smtp_load import discard, run_folder
from store import lookups, plain, reads, sendlog
from store.db import Database
from store.enums import RawOutcome
from store.models import BouncedAddress, Message, NotificationLog, OutboxMail, Shop, ShopUser

Statement = sa.Select[Any] | sa.CompoundSelect[Any]


def _expanding() -> list[Statement]:
    """The seven statements as they were, with expanding ``IN`` lists."""
    raw = lookups._RAW
    users, shops = ShopUser.__table__.c, Shop.__table__.c  # type: ignore[attr-defined]
    messages, outbox = Message.__table__.c, OutboxMail.__table__.c  # type: ignore[attr-defined]
    log, bounced = NotificationLog.__table__.c, BouncedAddress.__table__.c  # type: ignore[attr-defined]

    def listed(name: str) -> sa.BindParameter[Any]:
        return sa.bindparam(name, expanding=True)

    return [
        sa.select(raw.dedupe_key, raw.id).where(raw.dedupe_key.in_(listed("keys"))),
        sa.select(raw.message_id)
        .where(raw.message_id.in_(listed("ids")), raw.outcome != RawOutcome.DUPLICATE.value)
        .distinct(),
        sa.select(users.id, users.email, users.name, users.shop_id, shops.locale)
        .join_from(ShopUser.__table__, Shop.__table__, shops.id == users.shop_id)  # type: ignore[arg-type]
        .where(users.email.in_(listed("emails"))),
        sa.union_all(
            sa.select(messages.message_id, messages.ticket_id, sa.literal(0)).where(
                messages.message_id.in_(listed("ids"))
            ),
            sa.select(outbox.message_id, outbox.ticket_id, sa.literal(1)).where(
                outbox.message_id.in_(listed("ids")), outbox.ticket_id.is_not(None)
            ),
        ),
        sa.select(log.email, sa.func.count())
        .where(
            log.email.in_(listed("emails")),
            log.automatic == sa.true(),
            log.created_at >= sa.bindparam("automatic"),
        )
        .group_by(log.email),
        sa.select(log.email, log.ticket_id, sa.func.count())
        .where(log.email.in_(listed("emails")), log.created_at >= sa.bindparam("recent"))
        .group_by(log.email, log.ticket_id),
        sa.select(bounced.email, bounced.bounced_at).where(bounced.email.in_(listed("emails"))),
    ]


NOW = [
    lookups._DELIVERIES_HELD,
    lookups._MESSAGE_IDS_HELD,
    lookups._SHOP_USERS,
    lookups._KNOWN_MESSAGE_IDS,
    sendlog._AUTOMATIC_AHEAD,
    sendlog._RECENT_AHEAD,
    sendlog._BOUNCED_AHEAD,
]


def _params(n: int) -> dict[str, Any]:
    at = datetime.now(UTC)
    return {
        "keys": [f"{n}-{i:062x}" for i in range(3)],
        "ids": [f"<{n}.{i}@shop.example>" for i in range(3)],
        "emails": [f"m{n}.{i}@shop.example" for i in range(3)],
        "automatic": at - timedelta(days=1),
        "recent": at - timedelta(minutes=30),
    }


def _through_sqlalchemy(session: Session, batches: int) -> None:
    statements = _expanding()
    for n in range(batches):
        for statement in statements:
            plain.execute(session, statement, _params(n)).all()


def _through_fetch(session: Session, batches: int) -> None:
    for n in range(batches):
        for statement in NOW:
            reads.fetch(session, statement, _params(n))


def _fetched_together(session: Session, batches: int) -> None:
    for n in range(batches):
        params = _params(n)
        reads.fetch_together(session, *((statement, params) for statement in NOW[:4]))
        reads.fetch_together(session, *((statement, params) for statement in NOW[4:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--url", help="an empty database (default: SQLite under var/)")
    args = parser.parse_args()
    work = run_folder("batch-reads-")
    db = Database(args.url or f"sqlite:///{work}/mailgate.db")
    db.upgrade()
    ways: list[tuple[str, Callable[[Session, int], None]]] = [
        ("sqlalchemy", _through_sqlalchemy),
        ("fetch", _through_fetch),
        ("fetch_together", _fetched_together),
    ]
    dialect = db.engine.dialect.name
    print(f"{args.batches} batches of {len(NOW)} statements per way and round, {dialect}")
    print("| way | CPU µs/statement | CPU ms/batch | wall ms/batch |")
    print("|---|---:|---:|---:|")
    try:
        for round_ in range(args.rounds):
            for name, read_all in ways[round_ % len(ways) :] + ways[: round_ % len(ways)]:
                with db.read() as session:
                    read_all(session, 50)  # warm: statement caches, compiled plans
                    cpu, wall = time.thread_time(), time.perf_counter()
                    read_all(session, args.batches)
                    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
                each = cpu / (args.batches * len(NOW))
                print(
                    f"| {name} | {each * 1e6:.0f} | {each * len(NOW) * 1e3:.2f} |"
                    f" {wall / args.batches * 1e3:.2f} |"
                )
    finally:
        db.dispose()
        discard(work)


if __name__ == "__main__":
    main()
