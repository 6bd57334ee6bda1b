"""Stage 1 from files (``mailgate import``): an mbox, a maildir, a folder of ``.eml``.

Mails are prepared in parallel (``mailgate.prepare_pool``) and committed in batches;
running an import twice is safe because the pipeline recognises a delivery it already
holds (same Message-ID and same content) and records it as a duplicate instead of a
second ticket message.
"""

from __future__ import annotations

import logging
import mailbox
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
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


@dataclass
class ImportSummary:
    total: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.total += 1
        self.counts[outcome.kind] += 1


def count_mails(path: Path) -> int:
    if path.is_dir() and not _is_maildir(path):
        return sum(1 for _ in _eml_files(path))
    with _mailbox(path) as box:
        return len(box) if box is not None else 1


def iter_mails(path: Path) -> Iterator[tuple[str, bytes]]:
    """(label, raw bytes) of every mail under ``path``: mbox, maildir, folder or one file."""
    if path.is_dir() and not _is_maildir(path):
        for file in _eml_files(path):
            yield str(file), file.read_bytes()
        return
    with _mailbox(path) as box:
        if box is None:
            yield str(path), path.read_bytes()
            return
        for key in sorted(box.keys()):
            yield f"{path}:{key}", box.get_bytes(key)


def _eml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.eml") if p.is_file())


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


@contextmanager
def _mailbox(path: Path) -> Iterator[mailbox.Mailbox[mailbox.Message] | None]:
    """The maildir or mbox at ``path``, closed afterwards; None for a single mail file."""
    box: mailbox.Mailbox[mailbox.Message] | None = None
    if path.is_dir():
        box = mailbox.Maildir(path, factory=None, create=False)
    else:
        with path.open("rb") as handle:
            if handle.read(5) == b"From ":
                box = mailbox.mbox(path, factory=None, create=False)
    try:
        yield box
    finally:
        if box is not None:
            box.close()


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
    mails = iter_mails(path)
    source = Source("import", mailbox=str(path))

    def submit() -> list[Future[Prepared]]:
        chunk = islice(mails, batch_size)
        return [preparing.submit(Arrival(raw, Envelope(), source, clock())) for _, raw in chunk]

    batch = submit()
    while batch:
        following = submit()
        for outcome in pipeline.commit([future.result() for future in batch]):
            summary.add(outcome)
        if progress is not None:
            progress(len(batch))
        batch = following
    return summary
