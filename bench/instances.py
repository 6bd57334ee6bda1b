"""SMTP ingest on PostgreSQL with one gateway, ``--workers 2``, and two gateway processes.

    python -m bench.instances [--mails 2000] [--clients 8 64] [--setups one workers2 two]

For each set-up and client count: a fresh PostgreSQL database, ``mailgate serve``
process(es) on free ports, then ``--clients`` threads, each on one SMTP connection (as an
MTA keeps one), sending its share of ``--mails`` mails of ``bench.generate`` (five
languages, 30 % replies, HTML, 5 % screenshots; strangers, so every new mail is a ticket
and an acknowledgement) and waiting for each 250 — which comes only after the commit.
Prints mails/s and the p50/p99 latency from the start of a send to its 250. SQLite:
``bench.ingest smtp``.

- ``one``: one ``serve`` process.
- ``workers2``: ``serve --workers 2``: two gateway processes on one port (SO_REUSEPORT).
- ``two``: two ``serve`` processes on two ports, the clients split between them (two
  machines' worth of gateways on one machine).

The admin URL (``--admin-url``) must be allowed to create and drop databases. The load
generator runs on the same machine and takes its share of the CPU; run it on a quiet
machine, never as a timed test.
"""

from __future__ import annotations

import argparse
import statistics
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.generate import generate
from bench.smtp_load import (
    creation_cost,
    discard,
    free_port,
    run_folder,
    send_all,
    start_serve,
    stop_serve,
    wait_serving,
    write_config,
)


def run(setup: str, clients: int, count: int, admin_url: str, work: Path) -> str:
    name = f"bench_instances_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    ports = [free_port(), free_port()]
    configs = [
        write_config(work / f"{name}-{i}.toml", url=url, port=port, work=work / name)
        for i, port in enumerate(ports[: 2 if setup == "two" else 1])
    ]
    servers = [start_serve(configs[0], *(["--workers", "2"] if setup == "workers2" else []))]
    wait_serving(configs[0])  # the first one makes the schema; the second finds it made
    if setup == "two":
        servers.append(start_serve(configs[1]))
        wait_serving(configs[1])
    corpus = list(generate(count, seed=clients))
    file_ms = creation_cost(work / name)
    result = send_all(corpus, ports[: len(configs)], clients)
    stop_serve(servers)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    return (
        f"| {setup} | {clients} | {len(result.latencies)} | {result.per_second:.0f} |"
        f" {statistics.median(result.latencies) * 1000:.0f} | {result.percentile_ms(0.99):.0f} |"
        f" {result.refused} | {result.load_before} | {file_ms:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--setups", nargs="+", default=["one", "workers2", "two"])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    work = run_folder("mailgate-instances-")
    print(
        "| set-up | clients | mails | mails/s | p50 ms | p99 ms | refused | load before"
        " | new file CPU ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for clients in args.clients:
        for setup in args.setups:
            print(run(setup, clients, args.mails, args.admin_url, work), flush=True)
    discard(work)


if __name__ == "__main__":
    main()
