"""Blob stores: the folder (default) and the database (several gateways, no shared disk).

Both keep content once by its sha256, give it back whole or in chunks, and refuse
nothing silently."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from store.db import Database
from store.dbblobs import DatabaseBlobStore
from store.raw import BlobRef, Blobs, BlobStore


@pytest.fixture(params=["files", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Blobs]:
    """A folder in tmp_path, or the (emptied) blob tables of a SQLite or PostgreSQL store."""
    if request.param == "files":
        yield BlobStore(tmp_path / "blobs")
        return
    url = (
        f"sqlite:///{tmp_path}/mailgate.db"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_database")
    )
    db = Database(url)
    db.upgrade()
    with db.write() as s:
        s.execute(sa.text("DELETE FROM blob_chunks"))
        s.execute(sa.text("DELETE FROM blobs"))
    yield DatabaseBlobStore(db, chunk_size=64 * 1024)
    db.dispose()


def test_kept_content_comes_back_whole_and_in_chunks(blobs: Blobs) -> None:
    content = os.urandom(1_500_000)  # several chunks in either store
    ref = blobs.keep(content)
    assert ref == BlobRef(hashlib.sha256(content).hexdigest(), len(content))
    assert blobs.exists(ref.sha256)
    assert blobs.read(ref.sha256) == content
    pieces = list(blobs.chunks(ref.sha256))
    assert len(pieces) > 1 and max(map(len, pieces)) <= 1 << 20
    assert b"".join(pieces) == content


def test_identical_content_is_kept_once(blobs: Blobs, tmp_path: Path) -> None:
    first = blobs.keep(b"screenshot bytes")
    assert blobs.keep(b"screenshot bytes") == first
    if isinstance(blobs, DatabaseBlobStore):
        with blobs.db.read() as s:
            assert s.execute(sa.text("SELECT COUNT(*) FROM blobs")).scalar_one() == 1
    else:
        assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def test_empty_content_is_a_blob_too(blobs: Blobs) -> None:
    ref = blobs.keep(b"")
    assert ref.size == 0 and blobs.read(ref.sha256) == b""


def test_unknown_blob_is_not_found(blobs: Blobs) -> None:
    with pytest.raises(FileNotFoundError):
        blobs.read("0" * 64)
    assert not blobs.exists("0" * 64)


def test_gateways_keeping_the_same_bytes_at_once_store_them_once(store_url: str) -> None:
    """Two writers racing on one blob: both succeed, one row and its chunks remain."""
    db = Database(store_url)
    db.upgrade()
    content = os.urandom(300_000)
    try:
        stores = [DatabaseBlobStore(db, chunk_size=50_000) for _ in range(4)]
        with ThreadPoolExecutor(4) as pool:
            refs = set(pool.map(lambda store: store.keep(content), stores))
        assert len(refs) == 1
        with db.read() as s:
            assert s.execute(sa.text("SELECT COUNT(*) FROM blobs")).scalar_one() == 1
            assert s.execute(sa.text("SELECT COUNT(*) FROM blob_chunks")).scalar_one() == 6
        assert stores[0].read(refs.pop().sha256) == content
    finally:
        db.dispose()
