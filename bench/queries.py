"""Time the agent's queries on a filled store (``bench/fill_store.py``), as the CLI runs them.

    python -m bench.queries --url sqlite:////tmp/q1m.db [--repeat 7] [--explain]
        [--only NAME]... [--skip NAME]...

Each query goes through the same functions as ``mailgate tickets list`` and ``mailgate
stats`` (``store.views.list_tickets``, ``store.stats.workflow_stats`` with the default
``[workflow]`` and ``[sla]`` settings, as ``cli/ops.py`` calls it), including building
the 50 result objects, on a warm cache: the figure is the median of ``--repeat`` runs
(and the slowest); a query whose first run takes over ``SLOW`` seconds is timed once.
``--only``/``--skip`` pick queries by exact name. ``--explain`` prints the plan of every
SQL statement a query ran (PostgreSQL: EXPLAIN ANALYZE; SQLite: EXPLAIN QUERY PLAN).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from bench.fill_store import NOW, products
from mailgate.config import SlaSettings, WorkflowSettings
from mailgate.policy import sla_policy
from store.db import Database
from store.stats import default_since, queue_stats, workflow_stats
from store.views import TicketFilter, list_tickets


def queries(rare_word: str) -> dict[str, Callable[[Any], object]]:
    """The measured queries: the required four (default view, --search, --sort due, stats)
    and a few an agent also runs."""
    filters = {
        "tickets list": TicketFilter(),
        "tickets list --sort due": TicketFilter(sort="due"),
        "tickets list --sector payments": TicketFilter(sector="payments"),
        "tickets list --search plata (common)": TicketFilter(search="plata"),
        f"tickets list --search {rare_word} (rare)": TicketFilter(search=rare_word),
        f"tickets list --search 'comanda {rare_word}'": TicketFilter(search=f"comanda {rare_word}"),
        "tickets list --status all --search card": TicketFilter(statuses=("all",), search="card"),
    }
    runs: dict[str, Callable[[Any], object]] = {
        name: (lambda s, f=f: list_tickets(s, f)) for name, f in filters.items()
    }
    policy = sla_policy(WorkflowSettings(), SlaSettings())
    # What `mailgate stats` runs: the default reporting period (the last 30 days)
    runs["stats"] = lambda s: workflow_stats(s, policy, NOW, since=default_since(NOW))
    runs["stats --all"] = lambda s: workflow_stats(s, policy, NOW, since=None)
    runs["stats: queue counts only"] = queue_stats
    return runs


SLOW = 10.0  # seconds: a query this slow is timed once, not ``--repeat`` times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--explain", action="store_true", help="print the query plans")
    parser.add_argument("--only", action="append", default=[], help="run this query only")
    parser.add_argument("--skip", action="append", default=[], help="leave this query out")
    args = parser.parse_args()
    db = Database(args.url)
    with db.read() as s:
        tickets = s.execute(sa.text("SELECT COUNT(*) FROM tickets")).scalar_one()
    rare = products(__import__("random").Random(1))[7]
    print(f"{args.url}: {tickets:,} tickets")
    print("| query | median ms | max ms | rows |")
    print("|---|---:|---:|---:|")
    for name, run in queries(rare).items():
        if (args.only and name not in args.only) or name in args.skip:
            continue
        timings, rows = [], 0
        for _ in range(args.repeat):
            with db.read() as s:
                started = time.perf_counter()
                result = run(s)
                timings.append((time.perf_counter() - started) * 1000)
            rows = len(result) if isinstance(result, list) else 1
            if timings[0] > SLOW * 1000:
                break
        print(f"| {name} | {statistics.median(timings):.1f} | {max(timings):.1f} | {rows} |")
        if args.explain:
            _explain(db, name, run)
    db.dispose()


def _explain(db: Database, name: str, run: Callable[[Any], object]) -> None:
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with db.read() as s:
            run(s)
    finally:
        event.remove(db.engine, "before_cursor_execute", capture)
    print(f"\n#### {name}\n```")
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters in statements:
            if statement.startswith("SET "):  # a setting of the transaction: made, not planned
                cursor.execute(statement, parameters)
                continue
            if db.is_sqlite:
                cursor.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)
                for row in cursor.fetchall():
                    print(f"{'  ' * (row[1] > 0)}{row[3]}")
            else:
                cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters)
                for (line,) in cursor.fetchall():
                    print(line)
            print()
    finally:
        raw.close()
    print("```")


if __name__ == "__main__":
    main()
