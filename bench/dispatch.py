"""What sending a notification costs the gateway: ``python -m bench.dispatch [--mails N]
[--batch B] [--rounds R] [--url URL]``.

``serve`` sends the outbox from the same process that commits incoming mail (stage 9,
``Dispatcher.run_once``), so every notification's CPU is taken from the writer's
interpreter. Here ``--mails`` mails of ``bench.generate`` are committed through the
pipeline in batches of ``--batch`` into a fresh store (SQLite in a fresh folder under
var/ unless ``--url`` names an empty database), which queues their acknowledgements;
then the dispatcher sends the outbox to a maildir, round after round as ``serve`` does,
until nothing is due. Printed per notification: the CPU time (``thread_time``: claims,
delivery, marks) and the wall time (with the maildir's and the store's syncs). ``--rounds``
repeats the whole on a new store (SQLite only: ``--url`` is one round).
"""

from __future__ import annotations

import argparse
import time

from bench.generate import generate
from bench.ingest import scratch_settings
from bench.smtp_load import discard, run_folder
from mailgate.app import build_gateway
from mailgate.values import Arrival, Envelope, Source


def one_round(mails: int, batch: int, url: str | None) -> tuple[int, float, float]:
    """(notifications sent, CPU seconds, wall seconds) of sending one store's outbox."""
    work = run_folder("dispatch-")
    gateway = build_gateway(scratch_settings(work, url))
    try:
        source = Source("smtp")
        prepared = [
            gateway.pipeline.prepare(Arrival(mail.raw, Envelope(), source, gateway.clock()))
            for mail in generate(mails, 1)
        ]
        for start in range(0, len(prepared), batch):
            gateway.pipeline.commit(prepared[start : start + batch])
        sent = 0
        cpu, wall = time.thread_time(), time.perf_counter()
        while True:
            report = gateway.dispatcher.run_once()
            sent += report.sent
            if not report.more:
                break
        return sent, time.thread_time() - cpu, time.perf_counter() - wall
    finally:
        gateway.close()
        discard(work)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=8, help="mails per commit (default 8)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--url", help="an empty database (default: SQLite under var/)")
    args = parser.parse_args()
    if args.url and args.rounds > 1:
        parser.error("each round needs an empty database: with --url, run one round at a time")
    print("| notifications | CPU ms each | wall ms each |")
    print("|---:|---:|---:|")
    for _ in range(args.rounds):
        sent, cpu, wall = one_round(args.mails, args.batch, args.url)
        print(f"| {sent} | {cpu / sent * 1e3:.3f} | {wall / sent * 1e3:.3f} |", flush=True)


if __name__ == "__main__":
    main()
