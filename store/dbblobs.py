"""Blobs kept in the database (``[store] blobs = "database"``), for several gateways that
share one PostgreSQL but no disk: any of them can then read what another one kept.

Same contract as the folder (``store.raw.BlobStore``): content-addressed, stored once,
durable when ``keep`` returns (its own committed transaction, before the mail's). The
content is written and read in chunks of ``chunk_size`` bytes: rows stay small, and the
chunks are slices of the caller's buffer, so a 25 MB attachment is never copied whole.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime

import sqlalchemy as sa

from store.db import Database
from store.raw import BlobRef

CHUNK_SIZE = 1 << 20


class DatabaseBlobStore:
    """The ``blobs`` and ``blob_chunks`` tables, behind the ``Blobs`` protocol."""

    def __init__(self, db: Database, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.db = db
        self.chunk_size = chunk_size

    def keep(self, content: bytes, *, durable: bool = True) -> BlobRef:
        """Store ``content`` once; raises ``StoreUnavailable`` when the database refuses.
        Always durable when it returns: each blob is a transaction of its own."""
        sha = hashlib.sha256(content).hexdigest()
        ref = BlobRef(sha, len(content))
        if self.exists(sha):
            return ref
        view = memoryview(content)
        count = -(-len(content) // self.chunk_size)
        with self.db.write() as session:
            # A gateway keeping the same bytes at the same moment waits here for ours to
            # commit (unique key), then finds the row and writes nothing.
            claimed = session.execute(
                sa.text(
                    "INSERT INTO blobs (sha256, size, chunks, created_at)"
                    " VALUES (:sha, :size, :chunks, :now)"
                    " ON CONFLICT DO NOTHING RETURNING sha256"
                ),
                {
                    "sha": sha,
                    "size": len(content),
                    "chunks": count,
                    "now": datetime.now(UTC).replace(tzinfo=None),
                },
            ).first()
            if claimed is None:
                return ref
            for seq in range(count):
                start = seq * self.chunk_size
                session.execute(
                    sa.text(
                        "INSERT INTO blob_chunks (sha256, seq, data) VALUES (:sha, :seq, :data)"
                    ),
                    {"sha": sha, "seq": seq, "data": view[start : start + self.chunk_size]},
                )
        return ref

    def make_durable(self, sha256s: Iterable[str]) -> None:
        """Nothing to do: ``keep`` committed each blob."""

    def read(self, sha256: str) -> bytes:
        """The whole content; raises ``FileNotFoundError`` when no such blob is kept."""
        return b"".join(self.chunks(sha256))

    def chunks(self, sha256: str) -> Iterator[bytes]:
        """The content chunk by chunk (one row in memory at a time)."""
        with self.db.read() as session:
            count = session.execute(
                sa.text("SELECT chunks FROM blobs WHERE sha256 = :sha"), {"sha": sha256}
            ).scalar_one_or_none()
            if count is None:
                raise FileNotFoundError(f"no blob {sha256} in the store")
            for seq in range(count):
                yield bytes(
                    session.execute(
                        sa.text("SELECT data FROM blob_chunks WHERE sha256 = :sha AND seq = :seq"),
                        {"sha": sha256, "seq": seq},
                    ).scalar_one()
                )

    def exists(self, sha256: str) -> bool:
        with self.db.read() as session:
            found = session.execute(
                sa.text("SELECT 1 FROM blobs WHERE sha256 = :sha"), {"sha": sha256}
            ).first()
        return found is not None
