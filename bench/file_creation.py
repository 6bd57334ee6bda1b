"""What creating a file costs in some folders, over time: ``python -m bench.file_creation``.

    python -m bench.file_creation /var/tmp /root /work            # every 5 s, 8 times
    python -m bench.file_creation --delete 5000 --every 10 /work   # after deleting 5,000

Prints, for each folder, the CPU ms ``bench.smtp_load.creation_cost`` measures (200 empty
files, made in a new folder under it). On this machine's disk (ext4 without a journal)
the cost rose from 0.02-0.07 ms to 0.4-0.8 ms after many files were deleted near the
folder (bench/README.md, "Creating a file"). ``--delete N`` first makes and deletes N
files beside the first folder's probe, so that you can watch it happen. Everything it
makes is deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bench.smtp_load import creation_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path)
    parser.add_argument("--delete", type=int, default=0, help="files to delete first")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between rounds")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    probes = [Path(tempfile.mkdtemp(prefix="file-creation-", dir=f)) for f in args.folders]
    try:
        if args.delete:
            _make_and_delete(probes[0], args.delete)
        began = time.monotonic()
        print("| s | " + " | ".join(str(f) for f in args.folders) + " |")
        print("|---:|" + "---:|" * len(args.folders))
        for round_ in range(args.rounds):
            time.sleep(max(0.0, began + round_ * args.every - time.monotonic()))
            costs = [creation_cost(probe / str(round_)) for probe in probes]
            elapsed = time.monotonic() - began
            print(f"| {elapsed:.0f} | " + " | ".join(f"{c:.3f}" for c in costs) + " |", flush=True)
    finally:
        for probe in probes:
            shutil.rmtree(probe, ignore_errors=True)


def _make_and_delete(beside: Path, count: int) -> None:
    doomed = beside / "deleted"
    doomed.mkdir()
    for n in range(count):
        os.close(os.open(doomed / str(n), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    shutil.rmtree(doomed)


if __name__ == "__main__":
    main()
