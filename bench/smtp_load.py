"""What the SMTP benchmarks share: ``mailgate serve`` processes on free ports, and clients
that each keep one SMTP connection (as an MTA does) and wait for every 250.

Used by ``bench.ingest smtp`` (SQLite) and ``bench.instances`` (PostgreSQL, one and two
gateways). A 250 comes only after the mail's commit, so the latency measured from the
start of a send to its 250 is the whole of ingest: DATA, prepare, group commit.
"""

from __future__ import annotations

import atexit
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.generate import TO, Mail

REPO = Path(__file__).resolve().parents[1]


def run_folder(prefix: str) -> Path:
    """A fresh folder for one run's store, raw mails and outbound maildir.

    Under the checkout's ``var/``, where the README's gateway keeps its own, or under
    ``MAILGATE_BENCH_DIR``. Give it back with ``discard``, not ``shutil.rmtree``.
    """
    root = Path(os.environ.get("MAILGATE_BENCH_DIR") or REPO / "var")
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


_discarded: list[Path] = []


def discard(folder: Path) -> None:
    """Delete ``folder`` when the benchmark ends, not now.

    This machine's root file system is ext4 without a journal. There the kernel skips
    the inodes freed in the last half-minute or so when it picks one for a new file,
    and checks each of them on the way (``find_inode_bit`` → ``recently_deleted``).
    After a run's folder of a few thousand files was deleted, creating a file near it
    cost up to 0.5 ms of CPU instead of 0.02-0.1 ms, off and on for minutes
    (bench/README.md, "Creating a file"): a run that followed another's clean-up
    measured it too, with a mail making one to three files. Deleting at the end keeps
    at least the runs of one benchmark apart; ``MAILGATE_BENCH_KEEP=1`` keeps the
    folders, for a series of runs in turns (delete them after the series).
    """
    if os.environ.get("MAILGATE_BENCH_KEEP") == "1":
        print(f"kept: {folder}", file=sys.stderr)
        return
    _discarded.append(folder)


@atexit.register
def _delete_discarded() -> None:
    for folder in _discarded:
        shutil.rmtree(folder, ignore_errors=True)
    _discarded.clear()


def creation_cost(folder: Path) -> float:
    """CPU ms to create one empty file in ``folder`` now, printed by the benchmarks beside
    their figures: on this machine's disk it moved between 0.02 and 0.8 ms from one
    minute to the next, most after many deletions (``discard``). The probe's files
    stay until the folder goes."""
    probe = folder / ".creation-cost"
    probe.mkdir(parents=True, exist_ok=True)
    began = time.process_time()
    for n in range(200):
        os.close(os.open(probe / str(n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    return 1000 * (time.process_time() - began) / 200


_dns: list[str] = []
_dns_server: list[subprocess.Popen[str]] = []


def bench_dns() -> str | None:
    """The DNS server the benchmarked gateways ask (``[auth] dns_resolver``): a loopback
    server (``tests/dns_server.py``, in a process of its own, so that it takes no CPU
    from an importing benchmark) that answers NXDOMAIN for every generated sender's
    ``_dmarc`` name at once, as a warm local caching resolver would. The figures then
    measure Mailgate, not this machine's upstream resolver, which answers the reserved
    ``.example`` names in ~27 ms and drops some (a 5 s time-out for that mail).
    ``MAILGATE_BENCH_SYSTEM_DNS=1``: the machine's own resolver instead (None)."""
    if os.environ.get("MAILGATE_BENCH_SYSTEM_DNS") == "1":
        return None
    if not _dns:
        server = subprocess.Popen(
            [sys.executable, "-c", _DNS_MAIN],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        _dns_server.append(server)
        _dns.append(server.stdout.readline().strip())  # type: ignore[union-attr]
    return _dns[0]


# The server runs until its parent (the benchmark) ends: stdin closes, and so does it.
_DNS_MAIN = """
import sys
from tests.dns_server import LoopbackDns
server = LoopbackDns()
print(server.address, flush=True)
sys.stdin.read()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int | str = "self", field: str = "VmRSS") -> int:
    """A process's resident set (``VmRSS``) or its peak (``VmHWM``), in KiB, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for {pid}")


def write_config(
    path: Path, *, url: str, port: int, work: Path, prepare_processes: int | None = None
) -> Path:
    """A gateway's config: the store at ``url``, outbound mail to a maildir under ``work``,
    DNS from ``bench_dns()``; ``[smtp] prepare_processes`` when given.

    The per-connection mail budget is lifted: the clients here keep one connection for
    their whole share, which the default (100 MAIL per connection) would cut short.
    """
    path.write_text(
        f'[store]\nurl = "{url}"\nraw = "{work}/raw"\nattachments = "{work}/att"\n'
        f"[smtp]\nport = {port}\nmax_messages_per_connection = 1000000\n"
        + (f"prepare_processes = {prepare_processes}\n" if prepare_processes is not None else "")
        + f'[outbound]\ntransport = "maildir:{work}/out"\n[log]\nmail_lines = false\n'
        + (f'[auth]\ndns_resolver = "{dns}"\n' if (dns := bench_dns()) else "")
    )
    return path


def start_serve(config: Path, *args: str) -> subprocess.Popen[bytes]:
    """``mailgate serve`` as a process of this checkout; its output goes to a log beside
    the config (``serve_log``)."""
    with serve_log(config).open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cli.main", "--config", str(config), "serve", *args],
            cwd=REPO,
            stdout=log,
            stderr=log,
        )


def serve_log(config: Path) -> Path:
    return config.parent / f"serve-{config.stem}.log"


def wait_serving(config: Path, timeout: float = 120) -> None:
    """Until ``serve`` says it listens: with ``--workers N``, only once every worker does.
    (The port answers as soon as the first worker listens; clients that connected then
    would all be that worker's, as SO_REUSEPORT spreads only over the sockets bound.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if b"Mailgate listening" in serve_log(config).read_bytes():
            return
        time.sleep(0.2)
    raise RuntimeError(f"serve did not say it listens (see {serve_log(config)})")


def stop_serve(servers: Sequence[subprocess.Popen[bytes]]) -> None:
    for server in servers:
        server.terminate()
    for server in servers:
        server.wait(120)


def wait_listening(port: int, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {port}")


@dataclass
class LoadResult:
    seconds: float
    latencies: list[float] = field(default_factory=list)
    refused: int = 0
    load_before: str = ""

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile_ms(self, share: float) -> float:
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def send_all(corpus: Sequence[Mail], ports: Sequence[int], clients: int) -> LoadResult:
    """``clients`` threads, each on its own connection to ``ports[i % len(ports)]``, send
    every ``clients``-th mail of ``corpus`` and wait for each reply."""
    latencies: list[float] = []
    refused = 0
    lock = threading.Lock()

    def client(index: int) -> None:
        nonlocal refused
        port = ports[index % len(ports)]
        smtp: smtplib.SMTP | None = None
        for mail in corpus[index::clients]:
            started = time.perf_counter()
            try:
                if smtp is None:  # a dropped connection is opened again, as an MTA would
                    smtp = smtplib.SMTP("127.0.0.1", port, timeout=120)
                smtp.sendmail(mail.sender, [TO], mail.raw)
            except OSError as exc:  # smtplib's errors are OSErrors too
                with lock:
                    refused += 1
                answered = isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code != 421
                if not answered and smtp is not None:
                    smtp.close()
                    smtp = None
                continue
            took = time.perf_counter() - started
            with lock:
                latencies.append(took)
        if smtp is not None:
            smtp.quit()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    load_before = Path("/proc/loadavg").read_text().split()[0]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return LoadResult(time.perf_counter() - began, latencies, refused, load_before)
