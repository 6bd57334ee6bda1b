"""Ingest speed: ``mailgate import`` and SMTP end to end, on a fresh store each time.

    python -m bench.ingest import --mails 1000 [--url URL] [--seed 1]
    python -m bench.ingest smtp --mails 2000 --clients 8 64 [--workers 1] [--url URL] [--seed 1]
    python -m bench.ingest stages --mails 500 [--batch 64] [--profile N] [--statements]
        [--url URL] [--seed 1]

``import`` writes ``--mails`` mails of ``bench.generate`` to an mbox (in a child process,
so that the generator's memory is not counted), then runs the import path of ``mailgate
import`` (``import_mails``: prepare in ``--prepare-processes`` child processes, default
``[smtp] prepare_processes``, or threads; commit in batches of ``[store] batch_size``) in
this process into a fresh store — SQLite in a fresh folder under var/ (``run_folder``) unless
``--url`` names an empty database. It prints mails/s (the import alone; opening the store
and its migrations are not counted), the same with the start of the prepare processes
counted (what ``mailgate import`` of that many mails takes), that start in seconds (as in
``mailgate import``, the pool does not wait for its processes, which each import the
pipeline and load the language model: this process prepares the first mails meanwhile,
so the start is in the import's own time and the two figures are nearly the same),
the p50/p99 of a mail's latency (from the start of its batch, reading included, to that
batch's commit) and this process's peak resident set (``VmHWM``): the whole import,
Python and the libraries included. Every run's folder is removed afterwards.

``smtp`` starts ``mailgate serve`` as a process on a free port with a fresh store and
outbound mail to a maildir, then, per ``--clients`` count, ``clients`` threads each on its
own SMTP connection send their share of the mails and wait for each 250, which the
gateway answers only after the mail's commit. It prints mails/s, p50/p99 latency (start
of a send to its 250), the raw mails in the store afterwards (each 250 must have one) and
the serve process's peak resident set (with ``--workers N``, the largest worker's). A
fresh store and a fresh ``serve`` for each client count. PostgreSQL with one and two gateways:
``bench.instances``.

``stages`` runs the two halves of the pipeline one after the other in one thread —
``prepare`` for every mail, then ``commit`` in batches of ``--batch`` (64) — and prints the CPU time
(``thread_time``, which other processes on the machine do not inflate) and the wall time
per mail of each half, per outcome kind: where a mail's time goes, and what a single
gateway process can reach at best (its Python runs on one core at a time). With
``--profile N`` each half runs under ``cProfile`` too (which slows it, so its times are
not the figures) and the ``N`` functions with the most own time and the most cumulative
time of each half are printed after the table; with ``--statements``, the SQL statements
the commit sends per mail, by kind.

The load generator shares the machine with the gateway (and on a shared machine with
whatever else runs): the load average before each run is printed with the figures.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import cProfile
import os
import pstats
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from bench.generate import describe, generate
from bench.smtp_load import (
    REPO,
    bench_dns,
    creation_cost,
    discard,
    free_port,
    rss_kb,
    run_folder,
    send_all,
    start_serve,
    stop_serve,
    wait_listening,
    wait_serving,
    write_config,
)


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


if TYPE_CHECKING:
    from mailgate.config import Settings


def scratch_settings(work: Path, url: str | None) -> Settings:
    """A gateway's settings with everything in ``work`` (the store too, unless ``url``)."""
    from mailgate.config import (
        AuthSettings,
        OutboundSettings,
        Settings,
        SmtpSettings,
        StoreSettings,
    )

    return Settings(
        auth=AuthSettings(dns_resolver=bench_dns()),
        store=StoreSettings(
            url=url or f"sqlite:///{work}/mailgate.db",
            raw=str(work / "raw"),
            attachments=str(work / "att"),
        ),
        smtp=SmtpSettings(addresses=("support@localhost",)),
        outbound=OutboundSettings(transport=f"maildir:{work}/out"),
    )


def import_run(args: argparse.Namespace) -> None:
    from mailgate.app import build_gateway
    from mailgate.sources.importer import import_mails

    work = run_folder("ingest-import-")
    corpus = work / "corpus.mbox"
    subprocess.run(
        [sys.executable, "-m", "bench.generate", "--mails", str(args.mails), "--seed",
         str(args.seed), str(corpus)],
        cwd=REPO,
        check=True,
    )  # fmt: skip
    settings = scratch_settings(work, args.url)
    gateway = build_gateway(settings)
    latencies: list[float] = []
    load = _load()
    file_ms = creation_cost(work)
    starting = time.perf_counter()
    preparing = gateway.prepare_pool(processes=args.prepare_processes, wait=False)  # as import
    start = time.perf_counter() - starting
    began = batch_began = time.perf_counter()

    def progress(n: int) -> None:
        nonlocal batch_began
        now = time.perf_counter()
        latencies.extend([now - batch_began] * n)
        batch_began = now

    summary = import_mails(
        gateway.pipeline,
        corpus,
        clock=gateway.clock,
        preparing=preparing,
        batch_size=settings.store.batch_size,
        progress=progress,
    )
    seconds = time.perf_counter() - began
    children = [rss_kb(pid, "VmHWM") for pid in preparing.pids()]
    preparing.close()
    gateway.close()
    discard(work)
    peak = rss_kb("self", "VmHWM")
    latencies.sort()
    print(f"{summary.total} mails ({dict(summary.counts)}) into {settings.store.url.split(':')[0]}")
    print(
        "| mails | mails/s | with start-up | start-up s | p50 ms | p99 ms | peak RSS MB"
        " | prepare process MB | load before | new file CPU ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    print(
        f"| {summary.total} | {summary.total / seconds:.0f} |"
        f" {summary.total / (seconds + start):.0f} | {start:.2f} |"
        f" {statistics.median(latencies) * 1000:.0f} |"
        f" {latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000:.0f} |"
        f" {peak / 1024:.0f} | {' + '.join(f'{kb / 1024:.0f}' for kb in children) or '-'} |"
        f" {load} | {file_ms:.2f} |"
    )


def smtp_run(args: argparse.Namespace) -> None:
    corpus = list(generate(args.mails, args.seed))
    print(describe(corpus))
    print(
        "| clients | mails | mails/s | p50 ms | p99 ms | refused | stored | serve MB"
        " | serve CPU ms/mail | client CPU ms/mail | outbox sent | load | new file CPU ms |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    for clients in args.clients:
        work = run_folder("ingest-smtp-")
        port = free_port()
        url = args.url or f"sqlite:///{work}/mailgate.db"
        config = write_config(
            work / "mailgate.toml",
            url=url,
            port=port,
            work=work,
            prepare_processes=args.prepare_processes,
        )
        server = start_serve(config, "--workers", str(args.workers))
        try:
            wait_serving(config)
            wait_listening(port)
            load = _load()
            file_ms = creation_cost(work)
            pids = _gateway_pids(server.pid)
            cpu = _cpu_seconds(pids)
            client_cpu = time.process_time()
            result = send_all(corpus, [port], clients)
            client_cpu = time.process_time() - client_cpu
            cpu = _cpu_seconds(pids) - cpu
            peak = max(rss_kb(pid, "VmHWM") for pid in pids)
        finally:
            stop_serve([server])
        stored = _stored(url)
        sent, queued = _outbox(url)
        discard(work)
        print(
            f"| {clients} | {len(result.latencies)} | {result.per_second:.0f} |"
            f" {statistics.median(result.latencies) * 1000:.0f} |"
            f" {result.percentile_ms(0.99):.0f} | {result.refused} | {stored} |"
            f" {peak / 1024:.0f} | {1000 * cpu / len(result.latencies):.1f} |"
            f" {1000 * client_cpu / len(result.latencies):.1f} | {sent} of {sent + queued} |"
            f" {load} | {file_ms:.2f} |",
            flush=True,
        )


def _gateway_pids(pid: int) -> list[int]:
    """``serve`` and every process under it: its ``--workers`` and their prepare
    processes (``[smtp] prepare_processes``), whose CPU is the gateway's too."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").iterdir():
            todo.extend(int(c) for c in (task / "children").read_text().split())
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU the gateway processes have used so far: unlike mails/s, it hardly
    moves when other work loads the machine. It includes the outbox dispatcher's work
    done while the mails came in, not what is left in the outbox at the end."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def _stored(url: str) -> int:
    """Raw mails in the store: every mail answered 250 must be there (not fewer)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        count = int(conn.execute(sa.text("SELECT count(*) FROM raw_mails")).scalar_one())
    engine.dispose()
    return count


def _outbox(url: str) -> tuple[int, int]:
    """Notifications sent by the time the gateway stopped, and those left in the outbox:
    the dispatcher's work is part of the gateway's CPU only for the mails it sent."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    with engine.connect() as conn:
        sent = conn.execute(sa.text("SELECT count(*) FROM outbox_mails WHERE state = 'sent'"))
        left = conn.execute(sa.text("SELECT count(*) FROM outbox_mails WHERE state != 'sent'"))
        counts = int(sent.scalar_one()), int(left.scalar_one())
    engine.dispose()
    return counts


def stages_run(args: argparse.Namespace) -> None:
    from mailgate.app import build_gateway
    from mailgate.values import Arrival, Envelope, Source

    work = run_folder("ingest-stages-")
    gateway = build_gateway(scratch_settings(work, args.url))
    pipeline = gateway.pipeline
    corpus = [mail.raw for mail in generate(args.mails, args.seed)]
    source = Source("import")
    load = _load()
    profiles = {"prepare": _profiler(args.profile), "commit": _profiler(args.profile)}
    cpu, wall = time.thread_time(), time.perf_counter()
    with profiles["prepare"]:
        prepared = [
            pipeline.prepare(Arrival(raw, Envelope(), source, gateway.clock())) for raw in corpus
        ]
    prepare_cpu, prepare_wall = time.thread_time() - cpu, time.perf_counter() - wall
    by_kind: dict[str, list[float]] = {}
    cpu, wall = time.thread_time(), time.perf_counter()
    counted = _StatementCount() if args.statements else contextlib.nullcontext()
    with profiles["commit"], counted:
        for start in range(0, len(prepared), args.batch):
            batch_cpu = time.thread_time()
            outcomes = pipeline.commit(prepared[start : start + args.batch])
            share = (time.thread_time() - batch_cpu) / len(outcomes)
            for outcome in outcomes:
                by_kind.setdefault(outcome.kind, []).append(share)
    commit_cpu, commit_wall = time.thread_time() - cpu, time.perf_counter() - wall
    gateway.close()
    discard(work)
    n = len(corpus)
    print(f"{n} mails, load before {load}")
    print("| half | CPU ms/mail | wall ms/mail |")
    print("|---|---:|---:|")
    print(f"| prepare | {1000 * prepare_cpu / n:.2f} | {1000 * prepare_wall / n:.2f} |")
    print(f"| commit | {1000 * commit_cpu / n:.2f} | {1000 * commit_wall / n:.2f} |")
    print(
        f"one process's ceiling: {n / (prepare_cpu + commit_cpu):.0f} mails/s of CPU;"
        f" commit alone (the single writer): {n / commit_cpu:.0f} mails/s"
    )
    # A batch's CPU is shared out evenly, so these are batch mixes, not exact per kind.
    print(
        "commit CPU ms/mail by batch, per outcome: "
        + ", ".join(
            f"{kind} {1000 * statistics.mean(v):.1f} ({len(v)})" for kind, v in by_kind.items()
        )
    )
    if isinstance(counted, _StatementCount):
        counted.report(n)
    for half, profile in profiles.items():
        if isinstance(profile, cProfile.Profile):
            for order in ("tottime", "cumulative"):
                print(f"\n{half}, by {order}:")
                pstats.Stats(profile).sort_stats(order).print_stats(args.profile)


class _StatementCount:
    """The SQL statements the commit half sends, by their first words (``--statements``)."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def _count(self, *args: object) -> None:
        statement = args[2]
        assert isinstance(statement, str)
        self.counts[" ".join(statement.split())[:80]] += 1

    def __enter__(self) -> _StatementCount:
        sa_event.listen(Engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        sa_event.remove(Engine, "before_cursor_execute", self._count)

    def report(self, mails: int) -> None:
        print(f"\nstatements per mail in the commit: {sum(self.counts.values()) / mails:.2f}")
        for statement, count in self.counts.most_common(25):
            print(f"{count / mails:6.2f}  {statement}")


def _profiler(top: int) -> contextlib.AbstractContextManager[object]:
    return cProfile.Profile() if top else contextlib.nullcontext()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    one = commands.add_parser("import", help="mails/s and peak RSS of the import path")
    one.add_argument("--mails", type=int, default=1000)
    one.add_argument(
        "--prepare-processes", type=int, help="child processes (default: [smtp] prepare_processes)"
    )
    two = commands.add_parser("smtp", help="mails/s and latency of SMTP end to end")
    two.add_argument("--mails", type=int, default=2000)
    two.add_argument("--clients", type=int, nargs="+", default=[8, 64])
    two.add_argument("--workers", type=int, default=1, help="serve --workers N")
    two.add_argument(
        "--prepare-processes", type=int, help="[smtp] prepare_processes (default: its default)"
    )
    three = commands.add_parser("stages", help="CPU and wall time per mail of each half")
    three.add_argument("--mails", type=int, default=500)
    three.add_argument("--batch", type=int, default=64, help="mails per commit (default 64)")
    three.add_argument(
        "--statements", action="store_true", help="count the SQL statements of the commit"
    )
    three.add_argument(
        "--profile", type=int, default=0, metavar="N", help="print cProfile's top N of each half"
    )
    for sub in (one, two, three):
        sub.add_argument("--url", help="an empty database (default: SQLite in a temp folder)")
        sub.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    {"import": import_run, "smtp": smtp_run, "stages": stages_run}[args.command](args)


if __name__ == "__main__":
    main()
