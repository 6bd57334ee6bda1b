"""How well the parser reads real mail: ``python -m bench.corpus [--misses]``.

Runs ``mailgate.parse.parse_mail`` (what ``mailgate parse --json`` reports) on every
message of the public corpus (``$MAILGATE_CORPUS``, else ``../shared/corpus``) and
scores, per source folder and per field, the share of checked facts it gets right:
from address, from name, subject, text body, attachments (names and types) and the new
part of a reply (``reply_text``). The facts come from each folder's
``expectations.json``; the folders without one (cpython-test_email, mail-parser) are
checked against ``tests/data/corpus_truth.json``, written by reading each raw file.
Every file must also parse without an exception. The reply fixtures of
``tests/data/replies/`` (one reply mail per client and language, with its expected new
part) are scored last. ``--misses`` lists every fact that failed, expected vs got.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mailgate import reply_markers
from mailgate.errors import ParseFailure
from mailgate.parse import parse_mail
from mailgate.quoting import extract_reply
from mailgate.values import ParsedMail

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO / "tests" / "data" / "corpus_truth.json"
REPLIES = REPO / "tests" / "data" / "replies"
FIELDS = ("from_address", "from_name", "subject", "body", "attachments", "reply")
SOURCES = (
    "cpython-test_email",
    "mail-parser",
    "email-reply-parser",
    "talon",
    "flufl.bounce",
    "django-helpdesk",
)
_NOT_MAIL = frozenset({"README.md", "expectations.json"})
_SPACE = re.compile(r"\s+")


def corpus_folder() -> Path:
    """``$MAILGATE_CORPUS``, else ``shared/corpus`` beside the checkout, else the team's copy."""
    for candidate in (
        os.environ.get("MAILGATE_CORPUS"),
        REPO.parent / "shared" / "corpus",
        "/work/shared/corpus",
    ):
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return REPO.parent / "shared" / "corpus"


# -- facts ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Fact:
    """One thing a reader sees in one file, and how to tell whether we see it too."""

    file: str
    field: str
    expected: Any
    check: Callable[[Reading], tuple[bool, Any]]  # (matched, what we got)


@dataclass(slots=True)
class Reading:
    """A corpus file as our parser reads it (``mail`` is None when it raised)."""

    raw: bytes
    mail: ParsedMail | None
    error: str | None = None
    cache: dict[str, str] = field(default_factory=dict)

    def reply_of_body(self, sender: str | None = None) -> str:
        """The reply extracted from a file that is a body only (no headers)."""
        key = f"reply:{sender}"
        if key not in self.cache:
            self.cache[key] = extract_reply(self.raw.decode("utf-8"), sender=sender)
        return self.cache[key]

    def reply_of_html(self) -> str:
        if "html" not in self.cache:
            self.cache["html"] = extract_reply("", self.raw.decode("utf-8"))
        return self.cache["html"]


def squeezed(text: str) -> str:
    return _SPACE.sub("", text)


def spaced(text: str) -> str:
    """Whitespace runs as one space: how a reader compares two renderings of a text."""
    return _SPACE.sub(" ", text).strip()


def _mail_value(name: str) -> Callable[[Reading], Any]:
    def value(reading: Reading) -> Any:
        return getattr(reading.mail, name) if reading.mail is not None else None

    return value


def _equals(getter: Callable[[Reading], Any], expected: Any) -> Callable[[Reading], Any]:
    def check(reading: Reading) -> tuple[bool, Any]:
        got = getter(reading)
        return got == expected, got

    return check


def _body(reading: Reading) -> str:
    return reading.mail.body_text if reading.mail is not None else ""


def _reply(reading: Reading) -> str:
    return reading.mail.reply_text if reading.mail is not None else ""


def _attachments(reading: Reading) -> list[dict[str, str]]:
    if reading.mail is None:
        return []
    return [{"name": a.filename, "type": a.content_type} for a in reading.mail.attachments]


def _attachments_match(expected: list[dict[str, Any]]) -> Callable[[Reading], Any]:
    """Same types in the same order, and the same names where the mail gives one (a part
    the sender did not name gets a name of ours, which any reader would accept)."""

    def check(reading: Reading) -> tuple[bool, Any]:
        got = _attachments(reading)
        matched = len(got) == len(expected) and all(
            g["type"] == e["type"] and (e.get("name") is None or g["name"] == e["name"])
            for g, e in zip(got, expected, strict=True)
        )
        return matched, got

    return check


def _without_signature(text: str) -> str:
    """``text`` above its "-- " signature, without a closing "Sent from…" line."""
    lines = text.strip().split("\n")
    cut = next((i for i, line in enumerate(lines) if line.strip() == "--"), len(lines))
    lines = lines[:cut]
    while lines and (reply_markers.is_sent_from(lines[-1]) or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).strip()


def truth_facts(name: str, truth: dict[str, Any]) -> Iterator[Fact]:
    """Facts of a hand-checked truth entry (corpus_truth.json, the reply fixtures)."""
    if "from_address" in truth:
        yield Fact(
            name,
            "from_address",
            truth["from_address"],
            _equals(_mail_value("from_address"), truth["from_address"]),
        )
    if "from_name" in truth:
        yield Fact(
            name,
            "from_name",
            truth["from_name"],
            _equals(_mail_value("from_name"), truth["from_name"]),
        )
    if "subject" in truth:
        yield Fact(
            name, "subject", truth["subject"], _equals(_mail_value("subject"), truth["subject"])
        )
    if "body_starts" in truth:
        start = truth["body_starts"]

        def body_starts(reading: Reading, start: str = start) -> tuple[bool, Any]:
            got = spaced(_body(reading))
            return got.startswith(spaced(start)), got[: len(start) + 40]

        yield Fact(name, "body", f"starts with {start!r}", body_starts)
    if "body_equals" in truth:
        whole = truth["body_equals"]
        yield Fact(
            name, "body", whole, lambda r, w=whole: (spaced(_body(r)) == spaced(w), _body(r)[:200])
        )
    if "body_contains" in truth:
        needles = truth["body_contains"]

        def body_contains(reading: Reading, needles: list[str] = needles) -> tuple[bool, Any]:
            got = spaced(_body(reading))
            return all(spaced(n) in got for n in needles), got[:200]

        yield Fact(name, "body", f"contains {needles!r}", body_contains)
    if "attachments" in truth:
        yield Fact(
            name, "attachments", truth["attachments"], _attachments_match(truth["attachments"])
        )
    if "reply" in truth:
        expected = truth["reply"]

        def reply_equals(reading: Reading, expected: str = expected) -> tuple[bool, Any]:
            got = _reply(reading)
            return spaced(got) == spaced(expected), got

        yield Fact(name, "reply", expected, reply_equals)


def _erp_facts(folder: Path) -> Iterator[Fact]:
    for file, facts in json.loads((folder / "expectations.json").read_text())["files"].items():
        name = f"{folder.name}/{file}"
        if "reply_equals" in facts:
            expected = facts["reply_equals"]
            yield Fact(
                name,
                "reply",
                expected,
                lambda r, e=expected: (r.reply_of_body() == e, r.reply_of_body()),
            )
        for key, wanted in (("reply_contains", True), ("reply_must_not_contain", False)):
            if key in facts:
                needles = facts[key]
                yield Fact(
                    name,
                    "reply",
                    f"{key} {needles!r}",
                    lambda r, n=needles, w=wanted: (
                        all((x in r.reply_of_body()) == w for x in n),
                        r.reply_of_body(),
                    ),
                )


def _talon_facts(folder: Path) -> Iterator[Fact]:
    facts = json.loads((folder / "expectations.json").read_text())
    for file, entry in facts["standard_replies"].items():
        expected = entry["reply_text"]
        # talon only removes the quotation; reply_text also drops the signature.
        yield Fact(
            f"talon/{file}",
            "reply",
            expected,
            lambda r, e=expected: (
                _without_signature(_reply(r)) == _without_signature(e),
                _reply(r),
            ),
        )
    for file, entry in facts["html_replies"].items():
        expected = entry["reply_plain_text"]
        yield Fact(
            f"talon/{file}",
            "reply",
            expected,
            lambda r, e=expected: (squeezed(r.reply_of_html()) == squeezed(e), r.reply_of_html()),
        )
    for file, entry in facts["other"].items():
        needles = entry.get("reply_must_not_contain", [])
        yield Fact(
            f"talon/{file}",
            "reply",
            f"non-empty, without {needles!r}",
            lambda r, n=needles: (
                bool(_reply(r).strip()) and not any(x in _reply(r) for x in n),
                _reply(r),
            ),
        )
    for file, entry in facts["signature"].items():
        body = (folder / file).read_text(encoding="utf-8").strip()
        sender = (folder / entry["sender_file"]).read_text(encoding="utf-8").strip()
        signature = (folder / entry["signature_file"]).read_text(encoding="utf-8").strip()
        expected = body[: len(body) - len(signature)].strip()
        yield Fact(
            f"talon/{file}",
            "reply",
            expected,
            lambda r, e=expected, s=sender: (r.reply_of_body(s).strip() == e, r.reply_of_body(s)),
        )


def _helpdesk_facts(folder: Path) -> Iterator[Fact]:
    files = json.loads((folder / "expectations.json").read_text())["files"]
    for file, facts in files.items():
        name = f"{folder.name}/{file}"
        if "subject" in facts:
            yield Fact(
                name, "subject", facts["subject"], _equals(_mail_value("subject"), facts["subject"])
            )
        if "subject_startswith" in facts:
            start = facts["subject_startswith"]
            yield Fact(
                name,
                "subject",
                f"starts with {start!r}",
                lambda r, s=start: (
                    str(_mail_value("subject")(r)).startswith(s),
                    _mail_value("subject")(r),
                ),
            )
        if "body_equals" in facts:
            body = facts["body_equals"]
            yield Fact(name, "body", body, lambda r, b=body: (_body(r).strip() == b, _body(r)))
        if "body_contains" in facts:
            needles = facts["body_contains"]
            yield Fact(
                name,
                "body",
                f"contains {needles!r}",
                lambda r, n=needles: (all(x in _body(r) for x in n), _body(r)[:300]),
            )
        if "attachment_filenames" in facts:
            names = facts["attachment_filenames"]
            yield Fact(
                name,
                "attachments",
                names,
                lambda r, n=names: ([a["name"] for a in _attachments(r)] == n, _attachments(r)),
            )
        if "quoted_or_forwarded_part_contains" in facts:
            needles = facts["quoted_or_forwarded_part_contains"]
            yield Fact(
                name,
                "reply",
                f"body has, reply lacks {needles!r}",
                lambda r, n=needles: (
                    all(x in _body(r) and x not in _reply(r) for x in n),
                    _reply(r),
                ),
            )


def corpus_facts(corpus: Path, truth: dict[str, Any]) -> list[Fact]:
    facts: list[Fact] = []
    for name, entry in sorted(truth.items()):
        if not name.startswith("_"):
            facts.extend(truth_facts(name, entry))
    readers = {
        "email-reply-parser": _erp_facts,
        "talon": _talon_facts,
        "django-helpdesk": _helpdesk_facts,
    }
    for folder, reader in readers.items():
        if (corpus / folder / "expectations.json").is_file():
            facts.extend(reader(corpus / folder))
    return facts


# -- reading and scoring -------------------------------------------------------------------


def corpus_files(corpus: Path) -> list[str]:
    return sorted(
        path.relative_to(corpus).as_posix()
        for path in corpus.rglob("*")
        if path.is_file() and path.name not in _NOT_MAIL
    )


def read(raw: bytes) -> Reading:
    """``raw`` through the parser; an exception (or the parser's own catch-all defect,
    which hides one) is recorded, never raised."""
    try:
        mail = parse_mail(raw)
    except ParseFailure as failure:
        if raw.strip(b" \t\r\n\x00"):
            return Reading(raw, None, f"ParseFailure: {failure}")
        return Reading(raw, None)  # an empty file: refusing it is the right answer
    except Exception as error:
        return Reading(raw, None, f"{type(error).__name__}: {error}")
    hidden = next((d for d in mail.defects if d.startswith("parser-error")), None)
    return Reading(raw, mail, hidden)


@dataclass(slots=True)
class Score:
    matched: int = 0
    checked: int = 0

    def add(self, ok: bool) -> None:
        self.matched += ok
        self.checked += 1

    @property
    def share(self) -> float:
        return 100.0 * self.matched / self.checked if self.checked else 100.0

    def __str__(self) -> str:
        if not self.checked:
            return "-"
        return f"{self.matched}/{self.checked} {self.share:.1f}%"


@dataclass(slots=True)
class Miss:
    file: str
    field: str
    expected: Any
    got: Any


@dataclass(slots=True)
class Report:
    files: dict[str, int] = field(default_factory=dict)  # per source
    errors: dict[str, str] = field(default_factory=dict)  # file -> exception
    scores: dict[tuple[str, str], Score] = field(default_factory=dict)  # (source, field)
    misses: list[Miss] = field(default_factory=list)

    def score(self, source: str, name: str) -> Score:
        return self.scores.setdefault((source, name), Score())

    def total(self, name: str) -> Score:
        total = Score()
        for (_, field_name), score in self.scores.items():
            if field_name == name:
                total.matched += score.matched
                total.checked += score.checked
        return total


def load_truth() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(TRUTH.read_text(encoding="utf-8"))
    return loaded


def score_corpus(corpus: Path, truth: dict[str, Any] | None = None) -> Report:
    truth = load_truth() if truth is None else truth
    report = Report()
    readings: dict[str, Reading] = {}
    for name in corpus_files(corpus):
        source = name.split("/", 1)[0]
        report.files[source] = report.files.get(source, 0) + 1
        reading = read((corpus / name).read_bytes())
        readings[name] = reading
        if reading.error:
            report.errors[name] = reading.error
    for fact in corpus_facts(corpus, truth):
        source = fact.file.split("/", 1)[0]
        reading = readings.get(fact.file)
        if reading is None:
            reading = read((corpus / fact.file).read_bytes())  # pragma: no cover
        try:
            ok, got = fact.check(reading)
        except Exception as error:
            ok, got = False, f"{type(error).__name__}: {error}"
        report.score(source, fact.field).add(ok)
        if not ok:
            report.misses.append(Miss(fact.file, fact.field, fact.expected, got))
    return report


def reply_fixtures(folder: Path = REPLIES) -> list[tuple[str, str]]:
    """(fixture name, expected new part) for every ``<name>.eml`` with a ``<name>.txt``."""
    return [
        (path.stem, path.with_suffix(".txt").read_text(encoding="utf-8"))
        for path in sorted(folder.glob("*.eml"))
        if path.with_suffix(".txt").is_file()
    ]


def score_fixtures(folder: Path = REPLIES) -> tuple[Score, list[Miss]]:
    score, misses = Score(), []
    for name, expected in reply_fixtures(folder):
        got = parse_mail((folder / f"{name}.eml").read_bytes()).reply_text
        ok = spaced(got) == spaced(expected)
        score.add(ok)
        if not ok:
            misses.append(Miss(f"replies/{name}.eml", "reply", expected.strip(), got))
    return score, misses


# -- output --------------------------------------------------------------------------------


def print_report(report: Report, fixtures: Score) -> None:
    header = f"{'source':<20}{'files':>6}{'raise':>6}  " + "".join(f"{f:<20}" for f in FIELDS)
    print(header)
    for source in SOURCES:
        if source not in report.files:
            continue
        raised = sum(1 for name in report.errors if name.startswith(f"{source}/"))
        cells = "".join(f"{report.scores.get((source, f), Score())!s:<20}" for f in FIELDS)
        print(f"{source:<20}{report.files[source]:>6}{raised:>6}  {cells}")
    cells = "".join(f"{report.total(f)!s:<20}" for f in FIELDS)
    print(f"{'all':<20}{sum(report.files.values()):>6}{len(report.errors):>6}  {cells}")
    print(f"reply fixtures (tests/data/replies): {fixtures}")


def _shown(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 300 else text[:300] + "…"


def print_misses(report: Report, fixture_misses: list[Miss]) -> None:
    for name, error in sorted(report.errors.items()):
        print(f"RAISES {name}: {error}")
    for miss in [*report.misses, *fixture_misses]:
        print(f"MISS {miss.file} [{miss.field}]")
        print(f"    expected: {_shown(miss.expected)}")
        print(f"    got:      {_shown(miss.got)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--misses", action="store_true", help="list every mismatch")
    args = parser.parse_args(argv)
    corpus = corpus_folder()
    if not corpus.is_dir():
        print(f"no corpus at {corpus} (set MAILGATE_CORPUS)", file=sys.stderr)
        return 2
    report = score_corpus(corpus)
    fixtures, fixture_misses = score_fixtures()
    print(f"corpus: {corpus}")
    print_report(report, fixtures)
    if args.misses:
        print_misses(report, fixture_misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
