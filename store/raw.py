"""Content-addressed blobs: raw mails and attachment bytes, written durably.

``Blobs`` is what the pipeline needs; ``BlobStore`` keeps blobs as files in a folder
(the default), ``store.dbblobs.DatabaseBlobStore`` in the database (for several
gateways without a shared disk). A file is written to a temporary name, fsynced,
renamed to its sha256, and its folder fsynced, so that once ``keep`` returns the bytes
survive a crash or a power loss (Mailman's switchboard order). Identical content is
stored once.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from store.errors import StoreUnavailable


@dataclass(frozen=True, slots=True)
class BlobRef:
    sha256: str
    size: int


READ_CHUNK = 1 << 20  # bytes handed out at a time by ``chunks``


class Blobs(Protocol):
    """Where content-addressed bytes are kept."""

    def keep(self, content: bytes) -> BlobRef:
        """Store ``content`` durably (once); raises ``StoreUnavailable`` when refused."""
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

    def keep(self, content: bytes) -> BlobRef:
        """Store ``content`` durably; raises ``StoreUnavailable`` when the disk refuses."""
        sha = hashlib.sha256(content).hexdigest()
        path = self.path_for(sha)
        try:
            if not path.exists():
                self._write(path, content)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot keep file {path.name}: {exc}", operation="keep"
            ) from exc
        return BlobRef(sha, len(content))

    def read(self, sha256: str) -> bytes:
        return self.path_for(sha256).read_bytes()

    def chunks(self, sha256: str) -> Iterator[bytes]:
        with self.path_for(sha256).open("rb") as handle:
            while piece := handle.read(READ_CHUNK):
                yield piece

    def exists(self, sha256: str) -> bool:
        return self.path_for(sha256).exists()

    @staticmethod
    def _write(path: Path, content: bytes) -> None:
        folder = path.parent
        new_folder = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(folder)
        if new_folder:
            _fsync_dir(folder.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
