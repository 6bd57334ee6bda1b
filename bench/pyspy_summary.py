"""Where a thread's time goes, from a ``py-spy record -f raw`` profile.

    py-spy record -r 500 -f raw -o prof.txt -- python -m bench.ingest stages --mails 1500
    py-spy record -r 200 --gil -f raw -o prof.txt -p SERVE_PID -d 15
    python -m bench.pyspy_summary prof.txt "Pipeline.commit" [--top 40]

For every sample whose stack holds a frame matching ROOT (a substring such as
``Pipeline.commit`` or ``GroupCommitter._run``), each distinct function at or below that
frame is counted once: the printed share is the function's inclusive time within ROOT.
Then the functions that were on top of the stack (their own time). Line numbers are
dropped, so a function is one row however many lines of it were sampled.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
_SITE = re.compile(r"/\S*/site-packages/")


def _name(frame: str) -> str:
    return _SITE.sub("", _LINE.sub(")", frame))


Counts = collections.Counter[str]


def summarise(lines: list[str], root: str) -> tuple[int, Counts, Counts]:
    """Samples under ``root``; each function's inclusive and own samples there."""
    inclusive: Counts = collections.Counter()
    own: Counts = collections.Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        start = next((i for i, frame in enumerate(frames) if root in frame), None)
        if start is None:
            continue
        samples = int(count)
        total += samples
        for name in {_name(frame) for frame in frames[start:]}:
            inclusive[name] += samples
        own[_name(frames[-1])] += samples
    return total, inclusive, own


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("root", help="a frame's text, e.g. Pipeline.commit")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    lines = args.profile.read_text().splitlines()
    total, inclusive, own = summarise(lines, args.root)
    print(f"{total} samples under {args.root!r}")
    if not total:
        return
    print("\ninclusive:")
    for name, samples in inclusive.most_common(args.top):
        print(f"{100 * samples / total:5.1f} %  {name}")
    print("\nown:")
    for name, samples in own.most_common(args.top // 2):
        print(f"{100 * samples / total:5.1f} %  {name}")


if __name__ == "__main__":
    main()
