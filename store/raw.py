"""Content-addressed blobs: raw mails and attachment bytes, written durably.

``Blobs`` is what the pipeline needs; ``BlobStore`` keeps blobs as files in a folder
(the default), ``store.dbblobs.DatabaseBlobStore`` in the database (for several
gateways without a shared disk). A file is written to a temporary name, fsynced,
renamed to its sha256, and its folder fsynced, so that once ``keep`` returns the bytes
survive a crash or a power loss (Mailman's switchboard order). Identical content is
stored once.

The pipeline keeps a batch's blobs with ``durable=False`` and makes them all durable at
once with ``make_durable`` before the batch's commit: on Linux one ``syncfs`` of the
folder's file system instead of two fsyncs per blob, each of which commits the file
system's journal (``python -m bench.durability``: about half the CPU of keeping a blob).
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from store import durable as disk
from store.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class BlobRef:
    sha256: str
    size: int


READ_CHUNK = 1 << 20  # bytes handed out at a time by ``chunks``


class Blobs(Protocol):
    """Where content-addressed bytes are kept."""

    def keep(self, content: bytes, *, durable: bool = True) -> BlobRef:
        """Store ``content`` (once), durably when this returns; with ``durable=False``
        only once its sha256 has been given to ``make_durable``. Raises
        ``StoreUnavailable`` when refused."""
        ...

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """Make blobs kept with ``durable=False`` survive a crash or a power loss; raises
        ``StoreUnavailable`` when the disk refuses (they are then not to be committed)."""
        ...

    def read(self, sha256: str) -> bytes:
        """The whole content (for small blobs such as raw mails)."""
        ...

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The content piece by piece, so a large blob is never whole in memory."""
        ...

    def exists(self, sha256: str) -> bool: ...


class BlobStore:
    """A folder of files named by the sha256 of their content (``ab/abcdef…``)."""

    def __init__(self, root: str | Path, *, suffix: str = "") -> None:
        self.root = Path(root)
        self.suffix = suffix

    def path_for(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / sha256[:2] / f"{sha256}{self.suffix}"

    def keep(self, content: bytes, *, durable: bool = True) -> BlobRef:
        """Store ``content``; raises ``StoreUnavailable`` when the disk refuses."""
        sha = hashlib.sha256(content).hexdigest()
        path = self.root / sha[:2] / f"{sha}{self.suffix}"  # a hexdigest needs no check
        try:
            if not _holds(path, sha, len(content)):
                _write(path, content, durable=durable)
            elif durable:
                # It may be another writer's, not yet made durable: its sync is ours too.
                disk.fsync_file(path)
                _sync_folder(path.parent)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot keep file {path.name}: {exc}", operation="keep"
            ) from exc
        return BlobRef(sha, len(content))

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """One ``syncfs`` of the folder's file system where the system has it (Linux);
        elsewhere an fsync of each file, of each folder and of the root
        (``store.durable.sync_files``)."""
        try:
            disk.sync_files({self.path_for(sha) for sha in sha256s}, self.root)
        except OSError as exc:
            raise StoreUnavailable(f"cannot sync {self.root}: {exc}", operation="keep") from exc

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def chunks(self, sha256: str) -> Iterator[bytes]:
        with self.path_for(sha256).open("rb") as handle:
            while piece := handle.read(READ_CHUNK):
                yield piece

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()


TEMP_PREFIX = ".tmp-"  # a file being written; never a blob's name
# Numbers the temporary files of this process; with the pid they make a name no other
# writer uses at the same time (``next`` on a ``count`` is atomic under the GIL).
_temp_numbers = itertools.count()
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


# Folders whose own entry this process has seen synced in their parent. A folder made by
# another thread or process may already be there before its maker has synced the parent:
# the first blob this process writes into a folder syncs the parent itself, once.
_synced_folders: set[Path] = set()


def _holds(path: Path, sha256: str, size: int) -> bool:
    """Whether ``path`` is there with the content its name says. A blob kept with
    ``durable=False`` just before a crash may be there empty or short: a later keep of
    the same content (the sender's retry) writes it again rather than trust the name."""
    try:
        if path.stat().st_size != size:
            return False
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest() == sha256
    except FileNotFoundError:
        return False


def _write(path: Path, content: bytes, *, durable: bool) -> None:
    """Write temp, fsync it, rename, fsync the folder (and, the first time this process
    writes into it, its parent); without the fsyncs when not ``durable``. The folder is
    made only when the temp file cannot be opened in it: the 256 folders all exist after
    the first few hundred blobs, and a ``mkdir`` of one that exists cost 0.1-0.2 ms of
    CPU on ext4 while other writes were being synced (about as much as the file's own
    fsync)."""
    folder = path.parent
    try:
        fd, tmp = _open_temp(folder)
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = _open_temp(folder)
    try:
        try:
            disk.write_all(fd, content)
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        _sync_folder(folder)


def _sync_folder(folder: Path) -> None:
    """Sync ``folder`` and, the first time this process writes into it, its parent."""
    disk.fsync_dir(folder)
    if folder not in _synced_folders:
        disk.fsync_dir(folder.parent)
        _synced_folders.add(folder)


def _open_temp(folder: Path) -> tuple[int, Path]:
    """A new temporary file in ``folder``, opened for writing: a name from this process's
    pid and a counter, rather than ``tempfile.mkstemp``'s random names (a name left by
    a crashed process with the same pid is skipped)."""
    pid = os.getpid()
    while True:
        tmp = folder / f"{TEMP_PREFIX}{pid}-{next(_temp_numbers)}"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
        except FileExistsError:
            continue
