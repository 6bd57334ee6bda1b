"""Stage 1 from files (``mailgate import``): an mbox, a maildir, a folder of ``.eml``.

Mails are prepared in parallel (``mailgate.prepare_pool``) and committed in batches;
running an import twice is safe because the pipeline recognises a delivery it already
holds (same Message-ID and same content) and records it as a duplicate instead of a
second ticket message. A mail file that cannot be read (a dangling link, no permission,
gone from a maildir while the import ran) is counted as ``unreadable`` and named in the
summary; the rest is imported.
"""

from __future__ import annotations

import logging
import mailbox
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

from mailgate.apply import Outcome
from mailgate.clock import Clock
from mailgate.pipeline import Pipeline
from mailgate.prepare_pool import PreparePool
from mailgate.preparer import Prepared
from mailgate.values import Arrival, Envelope, Source

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
# A line of an mbox that starts with this begins the next mail (what ``mailbox.mbox``
# reads too): the count for the progress bar and the reading must agree.
_MBOX_SEPARATOR = b"From "
UNREADABLE = "unreadable"  # the summary's count of mail files that could not be read
Unreadable = Callable[[str, str], None]  # (label, why) of a mail file that cannot be read


@dataclass
class ImportSummary:
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    unreadable: list[str] = field(default_factory=list)  # "label: why", in the order found

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        self.counts[outcome.kind] += 1

    def add_unreadable(self, label: str, why: str) -> None:
        self.total += 1
        self.counts[UNREADABLE] += 1
        self.unreadable.append(f"{label}: {why}")


def count_mails(path: Path) -> int:
    if path.is_dir():
        if _is_maildir(path):
            return len(_maildir(path))
        return sum(1 for _ in _eml_files(path))
    if _is_mbox(path):
        with path.open("rb") as handle:
            return sum(1 for line in handle if line.startswith(_MBOX_SEPARATOR))
    return 1


def iter_mails(path: Path, unreadable: Unreadable | None = None) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of every mail under ``path``: mbox, maildir, folder or one file.

    A mail of a maildir or a folder that cannot be read is given to ``unreadable`` and
    skipped; without it, the error is raised."""
    if path.is_dir():
        if _is_maildir(path):
            box = _maildir(path)
            for key in sorted(box.keys()):
                label = f"{path}:{key}"
                if (raw := _read(label, partial(box.get_bytes, key), unreadable)) is not None:
                    yield label, raw
            return
        for file in _eml_files(path):
            if (raw := _read(str(file), file.read_bytes, unreadable)) is not None:
                yield str(file), raw
    elif _is_mbox(path):
        for number, raw in enumerate(mbox_messages(path)):
            yield f"{path}:{number}", raw
    else:
        yield str(path), path.read_bytes()


def mbox_messages(path: Path) -> Iterator[bytes]:
    """The mails of an mbox, in one pass, each exactly as ``mailbox.mbox`` gives it: a
    line that starts with ``From `` begins the next mail and is not part of it, and the
    blank line before it is dropped.

    ``mailbox.mbox`` first reads the whole file line by line for a table of contents, in
    Python, before the first mail, and ``count_mails`` had it do that once more. For
    10,000 mails of the benchmark corpus (93 MB) it took 1.1-1.2 s to read them and
    0.8 s to count them; this reads them in 0.2-0.6 s and counts them in 0.2-0.3 s.
    """
    with path.open("rb") as handle:
        mail: bytearray | None = None  # not a list of lines: no object per line held
        last_was_empty = False
        for line in handle:
            if line.startswith(_MBOX_SEPARATOR):
                if mail is not None:
                    yield _finished(mail, last_was_empty)
                mail, last_was_empty = bytearray(), False
            elif mail is not None:
                mail += line
                last_was_empty = line == b"\n"
        if mail is not None:
            yield _finished(mail, last_was_empty)


def _read(label: str, read: Callable[[], bytes], unreadable: Unreadable | None) -> bytes | None:
    try:
        return read()
    except KeyError:  # mailbox's word for a file gone since it listed the folder
        why = "no longer in the maildir"
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
    if unreadable is None:
        raise OSError(f"cannot read {label}: {why}")
    log.warning("import: cannot read %s: %s", label, why)
    unreadable(label, why)
    return None


def _finished(mail: bytearray, last_was_empty: bool) -> bytes:
    if last_was_empty:
        del mail[-1:]  # the blank line before the next "From " line
    return bytes(mail)


def _is_mbox(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(len(_MBOX_SEPARATOR)) == _MBOX_SEPARATOR


def _eml_files(folder: Path) -> list[Path]:
    """The folder's ``.eml`` files, and its ``.eml`` links that lead nowhere (reported as
    unreadable, not passed over); not folders, pipes or devices, which a read would
    hang on or fail."""
    return sorted(p for p in folder.rglob("*.eml") if p.is_file() or _is_broken_link(p))


def _is_broken_link(path: Path) -> bool:
    return path.is_symlink() and not path.exists()


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _maildir(path: Path) -> mailbox.Maildir:
    return mailbox.Maildir(path, factory=None, create=False)


def import_mails(
    pipeline: Pipeline,
    path: Path,
    *,
    clock: Clock,
    preparing: PreparePool,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> ImportSummary:
    """Feed every mail under ``path`` to the pipeline; raises ``StoreUnavailable`` if the
    store goes away (what was committed stays committed; run the import again).

    The next batch is being prepared (``preparing``: in child processes, or threads)
    while the current one commits."""
    summary = ImportSummary()
    mails = iter_mails(path, summary.add_unreadable)
    source = Source("import", mailbox=str(path))

    def submit() -> list[Future[Prepared]]:
        chunk = islice(mails, batch_size)
        return [preparing.submit(Arrival(raw, Envelope(), source, clock())) for _, raw in chunk]

    batch, shown = submit(), 0
    while batch:
        following = submit()
        for outcome in pipeline.commit([future.result() for future in batch]):
            summary.add(outcome)
        if progress is not None:  # the unreadable files count as done too
            progress(summary.total - shown)
            shown = summary.total
        batch = following
    return summary
