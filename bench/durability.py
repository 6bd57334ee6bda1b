"""What making blobs durable costs: ``python -m bench.durability [--blobs N] [--batch B]
[--rounds R] [--under DIR]``.

Keeps ``N`` mail-sized blobs (8 KB, random) in a fresh ``BlobStore`` under ``var/`` (the
file system the gateway writes to; ``--under`` another folder, such as ``/tmp`` to see
what the benches paid there before they moved, bench/README.md) three ways and prints,
per blob, the wall time, this process's CPU, and the CPU the whole machine was busy for
(``/proc/stat``, so the kernel's journal and write-back threads count too):

- ``each``: ``keep(durable=True)``, an fsync of the file and of its folder per blob
  (what the preparer did before 2026-11-24, fifth session);
- ``batch``: ``keep(durable=False)`` and one ``make_durable`` per ``B`` blobs (the
  pipeline now: one ``syncfs`` per batch on Linux);
- ``batch-files``: the same without ``syncfs`` (what other systems do: an fsync of
  each file, then of each folder).

Each round runs the three ways in a different order (the journal work one way leaves
behind can slow the next). Run it on a quiet machine: write-back from other processes
counts in the machine's figure.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from store import durable
from store.raw import BlobStore

ROOT = Path(__file__).resolve().parents[1] / "var"


def _busy_seconds() -> float:
    """CPU time the machine spent busy (not idle, not waiting for I/O), all cores."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:]]
    idle, iowait = fields[3], fields[4]
    return (sum(fields[:8]) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    name: str, keep_all: Callable[[BlobStore, list[bytes]], None], blobs: int, under: Path
) -> None:
    contents = [os.urandom(8192) for _ in range(blobs)]
    folder = Path(tempfile.mkdtemp(prefix="bench-durability-", dir=under))
    try:
        store = BlobStore(folder)
        store.keep(b"warm up: the root exists")
        wall, own, busy = time.perf_counter(), _own_cpu(), _busy_seconds()
        keep_all(store, contents)
        wall = time.perf_counter() - wall
        own, busy = _own_cpu() - own, _busy_seconds() - busy
    finally:
        shutil.rmtree(folder)
    per = 1000 / blobs
    print(f"| {name} | {wall * per:.3f} | {own * per:.3f} | {busy * per:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blobs", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64, help="blobs per make_durable")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--under", type=Path, default=ROOT, help=f"folder to keep the blobs in (default {ROOT})"
    )
    args = parser.parse_args()
    args.under.mkdir(parents=True, exist_ok=True)

    def each(store: BlobStore, contents: list[bytes]) -> None:
        for content in contents:
            store.keep(content)

    def batch(store: BlobStore, contents: list[bytes]) -> None:
        for start in range(0, len(contents), args.batch):
            refs = [store.keep(c, durable=False) for c in contents[start : start + args.batch]]
            store.make_durable(ref.sha256 for ref in refs)

    def batch_files(store: BlobStore, contents: list[bytes]) -> None:
        syncfs, durable.syncfs = durable.syncfs, None
        try:
            batch(store, contents)
        finally:
            durable.syncfs = syncfs

    print(f"{args.blobs} blobs of 8 KB, {args.batch} per batch, under {args.under}")
    print("| way | wall ms/blob | process CPU ms/blob | machine busy ms/blob |")
    print("|---|---:|---:|---:|")
    ways = [("each", each), ("batch", batch), ("batch-files", batch_files)]
    for round_ in range(args.rounds):
        for name, keep_all in ways[round_ % 3 :] + ways[: round_ % 3]:
            measure(name, keep_all, args.blobs, args.under)
    if durable.syncfs is None:
        print("(no syncfs here: batch is batch-files)")


if __name__ == "__main__":
    main()
