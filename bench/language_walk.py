"""The language model's byte walk with and without its transition cache. Run by hand:

    python -m bench.language_walk [--mails 400] [--reps 20]

``TrieIdentifier.visits`` (cached) against ``visits_uncached`` (the trie searched for every
byte), and ``mailgate.language.detect_language`` with either, on the detection text of
generated mails (``bench.generate``: subject and plain text without the quoted lines,
through ``detection_text`` as the pipeline does) and on the sample mails of
``tests/data/language/``. The two are timed in turns within every repetition (the machine's
speed drifts); the medians over the repetitions are printed. Warm: the cache already holds
the texts' transitions. Cold: the cache emptied before every call (a process's first mail;
"uncached cleared" is the uncached walk after the same emptying, which leaves the CPU's
caches cold: compare cold with it).
First pass: emptied before the texts, then each walked once (the first mails of a
process). Also the cache's memory (tracemalloc).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import statistics
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from bench.generate import generate
from mailgate import language_model
from mailgate.language import _identifier, detect_language, detection_text

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "language"
CACHED = language_model.TrieIdentifier.visits
UNCACHED = language_model.TrieIdentifier.visits_uncached


def mail_texts(count: int) -> list[str]:
    texts = []
    for mail in generate(count):
        msg = email.message_from_bytes(mail.raw, policy=email.policy.default)
        body = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        own = "\n".join(line for line in body.splitlines() if not line.startswith(">"))
        texts.append(detection_text(str(msg["Subject"]), own))
    return texts


def sample_texts() -> list[str]:
    return [
        detection_text("", entry.strip())
        for path in sorted(DATA.glob("*.txt"))
        for entry in path.read_text("utf-8").split("\n---\n")
    ]


def per_call(call: Callable[[str, bytes], object], texts: list[str], clear: bool) -> float:
    """µs per call of ``call`` over ``texts``, each call timed alone (``clear``: the cache
    emptied before each, outside the timing)."""
    identifier = _identifier()
    total = 0.0
    for text in texts:
        raw = text.encode()
        if clear:
            identifier.clear_cache()
        started = time.perf_counter()
        call(text, raw)
        total += time.perf_counter() - started
    return total / len(texts) * 1e6


def compare(name: str, texts: list[str], reps: int) -> None:
    identifier = _identifier()
    for text in texts:
        raw = text.encode()
        assert identifier.visits(raw) == identifier.visits_uncached(raw), text

    def walk(visits: Callable[..., object]) -> Callable[[str, bytes], object]:
        return lambda text, raw: visits(identifier, raw)

    def detect(visits: Callable[..., object]) -> Callable[[str, bytes], object]:
        def call(text: str, raw: bytes) -> object:
            language_model.TrieIdentifier.visits = visits  # type: ignore[method-assign]
            try:
                return detect_language(text)
            finally:
                language_model.TrieIdentifier.visits = CACHED  # type: ignore[method-assign]

        return call

    for label, make in (("visits", walk), ("detect_language", detect)):
        times: dict[str, list[float]] = {
            "uncached": [],
            "uncached cleared": [],
            "cold": [],
            "first pass": [],
            "warm": [],
        }
        for rep in range(reps):
            order = list(times)
            if rep % 2:
                order.reverse()
            for kind in order:
                if kind == "first pass":
                    identifier.clear_cache()
                elif kind == "warm":
                    per_call(make(CACHED), texts, clear=False)  # fill it
                call = make(UNCACHED if kind.startswith("uncached") else CACHED)
                clear = kind in ("cold", "uncached cleared")
                times[kind].append(per_call(call, texts, clear=clear))
        base = statistics.median(times["uncached"])
        cells = "  ".join(
            f"{kind} {statistics.median(t):6.1f} ({statistics.median(t) / base:4.0%})"
            for kind, t in times.items()
        )
        print(f"  {name:8} {label:16} {cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mails", type=int, default=400)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    mails, samples = mail_texts(args.mails), sample_texts()
    for texts, what in ((mails, "generated mails"), (samples, "sample mails")):
        size = statistics.mean(len(t.encode()) for t in texts)
        print(f"{len(texts)} {what}, {size:.0f} bytes of detection text on average")
    print("µs per call, median of the repetitions (cached / uncached in parentheses):")
    compare("mails", mails, args.reps)
    compare("samples", samples, args.reps)
    tracemalloc.start()
    cache = language_model.new_cache(_identifier()._root)
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"cache: {len(cache):,} slots, {held / 1e6:.2f} MB (tracemalloc), fixed: a walked"
        " transition takes the slot of an older one"
    )


if __name__ == "__main__":
    main()
