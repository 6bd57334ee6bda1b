"""Time the scheduler's fold of the counter and per-day tables on a filled store.

    python -m bench.compaction --url sqlite:////tmp/q1m.db [--changes 50] [--rounds 3]

Each round times ``day_totals.compact`` and ``counts.compact`` in one write transaction
(as ``Scheduler.run_once`` runs them), first with nothing new to fold, then after
``--changes`` tickets had a first response changed by one second (which adds rows to
``ticket_day_totals`` and ``duration_days`` through the triggers). This changes the store:
run it on a benchmark store only.
"""

from __future__ import annotations

import argparse
import time

import sqlalchemy as sa

from store import counts, day_totals
from store.db import Database

_CHANGE = (
    "UPDATE tickets SET first_response_wall_seconds = first_response_wall_seconds + 1"
    " WHERE id IN (SELECT id FROM tickets WHERE first_response_wall_seconds IS NOT NULL"
    " ORDER BY id DESC LIMIT :n)"
)


def _fold(db: Database) -> tuple[int, float]:
    began = time.perf_counter()
    with db.write() as session:
        folded = day_totals.compact(session) + counts.compact(session)
    return folded, 1000 * (time.perf_counter() - began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--changes", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    db = Database(args.url)
    print("| round | nothing new: rows folded, ms | after the changes: rows folded, ms |")
    print("|---:|---|---|")
    for n in range(1, args.rounds + 1):
        idle = _fold(db)
        with db.write() as session:
            session.execute(sa.text(_CHANGE), {"n": args.changes})
        busy = _fold(db)
        print(f"| {n} | {idle[0]}, {idle[1]:.0f} | {busy[0]}, {busy[1]:.0f} |")
    db.dispose()


if __name__ == "__main__":
    main()
