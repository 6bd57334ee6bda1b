"""CPU per thread of running processes, over a few seconds: where a gateway's cores go.

    python -m bench.threads SECONDS PID [PID ...]

Reads ``/proc/PID/task/TID/stat`` before and after ``SECONDS`` and prints each thread's
share of a core, split into user and system time, busiest first. Python 3.11 does not name
its threads for the kernel, so a thread shows as its TID: ``py-spy dump --pid PID`` prints
each TID with its Python name (``group-commit``, ``prepare-read``, ``MainThread``…).
Run it beside a load, e.g. ``python -m bench.ingest smtp --mails 4000 --clients 64``,
with ``serve``'s PID and its prepare process's.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

Ticks = dict[tuple[int, int], tuple[int, int]]


def thread_ticks(pid: int) -> Ticks:
    """(pid, tid) → (user, system) clock ticks used so far, for every thread of ``pid``."""
    ticks: Ticks = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        ticks[(pid, int(task.name))] = (int(fields[11]), int(fields[12]))
    return ticks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seconds", type=float)
    parser.add_argument("pids", type=int, nargs="+")
    args = parser.parse_args()
    before: Ticks = {}
    for pid in args.pids:
        before.update(thread_ticks(pid))
    began = time.perf_counter()
    time.sleep(args.seconds)
    after: Ticks = {}
    for pid in args.pids:
        after.update(thread_ticks(pid))
    seconds = (time.perf_counter() - began) * os.sysconf("SC_CLK_TCK")
    rows = []
    for key, (user, system) in after.items():
        user0, system0 = before.get(key, (0, 0))
        rows.append(((user - user0) / seconds, (system - system0) / seconds, key))
    rows.sort(key=lambda row: row[0] + row[1], reverse=True)
    print("| pid | tid | cores | user | system |")
    print("|---:|---:|---:|---:|---:|")
    for user_share, system_share, (pid, tid) in rows:
        if user_share + system_share >= 0.005:
            cores = user_share + system_share
            print(f"| {pid} | {tid} | {cores:.2f} | {user_share:.2f} | {system_share:.2f} |")
    total_user = sum(row[0] for row in rows)
    total_system = sum(row[1] for row in rows)
    print(f"all threads: {total_user + total_system:.2f} cores ({total_system:.2f} system)")


if __name__ == "__main__":
    main()
