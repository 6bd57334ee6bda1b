"""SMTP ingest on PostgreSQL with one gateway, ``--workers 2``, and two gateway processes.

    python -m bench.instances [--mails 2000] [--clients 8 64] [--setups one workers2 two]

For each set-up and client count: a fresh PostgreSQL database, ``mailgate serve``
process(es) on free ports, then ``--clients`` threads, each on one SMTP connection (as an
MTA keeps one), sending its share of ``--mails`` generated mails (~1 KB of text, five
languages, 30 % replies; strangers, so every new mail is a ticket and an acknowledgement)
and waiting for each 250 — which comes only after the commit. Prints mails/s and the
p50/p99 latency from the start of a send to its 250.

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
import random
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
LINES = [
    "Bună ziua, comanda {n} nu a fost livrată și clienta așteaptă.",
    "Dzień dobry, zamówienie {n} nie dotarło do klientki.",
    "Goedendag, bestelling {n} is niet geleverd.",
    "Bom dia, a encomenda {n} não foi entregue.",
    "Hello, order {n} was not delivered and the customer is waiting.",
]


def mails(count: int, seed: int) -> list[tuple[str, bytes]]:
    rng = random.Random(seed)
    made: list[tuple[str, bytes]] = []
    ids: list[str] = []
    for n in range(count):
        sender = f"user{rng.randrange(400)}@shop{rng.randrange(200)}.example"
        msg = EmailMessage()
        msg["From"] = sender
        msg["To"] = "support@localhost"
        msg["Message-ID"] = mid = f"<{seed}.{n}@bench.example>"
        if ids and rng.random() < 0.3:
            msg["Subject"] = f"Re: Comanda {n}"
            msg["In-Reply-To"] = msg["References"] = rng.choice(ids[-200:])
        else:
            msg["Subject"] = f"Comanda {n}"
        msg.set_content("\n".join(rng.choice(LINES).format(n=n) for _ in range(8)))
        ids.append(mid)
        made.append((sender, msg.as_bytes(policy=SMTP_POLICY)))
    return made


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(config: Path, *args: str) -> subprocess.Popen[bytes]:
    with (config.parent / f"serve-{config.stem}.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--config", str(config), "serve", *args],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_listening(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


def run(setup: str, clients: int, count: int, admin_url: str, work: Path) -> str:
    name = f"bench_instances_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    ports = [free_port(), free_port()]
    configs = []
    for i, port in enumerate(ports[: 2 if setup == "two" else 1]):
        config = work / f"{name}-{i}.toml"
        config.write_text(
            f'[store]\nurl = "{url}"\nraw = "{work}/{name}/raw"\n'
            f'attachments = "{work}/{name}/att"\n[smtp]\nport = {port}\n'
            f'[outbound]\ntransport = "maildir:{work}/{name}/out"\n[log]\nmail_lines = false\n'
        )
        configs.append(config)
    servers = [start(configs[0], *(["--workers", "2"] if setup == "workers2" else []))]
    wait_listening(ports[0])  # the first one makes the schema; the second finds it made
    if setup == "two":
        servers.append(start(configs[1]))
        wait_listening(ports[1])
    corpus = mails(count, seed=clients)
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal failures
        port = ports[index % len(configs)]
        mine = corpus[index::clients]
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            for sender, raw in mine:
                started = time.perf_counter()
                try:
                    smtp.sendmail(sender, ["support@localhost"], raw)
                except smtplib.SMTPException:
                    with lock:
                        failures += 1
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    load_before = Path("/proc/loadavg").read_text().split()[0]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(120)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return (
        f"| {setup} | {clients} | {len(latencies)} | {len(latencies) / seconds:.0f} |"
        f" {statistics.median(latencies) * 1000:.0f} | {p99 * 1000:.0f} | {failures} |"
        f" {load_before} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--clients", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--setups", nargs="+", default=["one", "workers2", "two"])
    parser.add_argument("--admin-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mailgate-instances-"))
    print("| set-up | clients | mails | mails/s | p50 ms | p99 ms | refused | load before |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for clients in args.clients:
        for setup in args.setups:
            print(run(setup, clients, args.mails, args.admin_url, work), flush=True)


if __name__ == "__main__":
    main()
