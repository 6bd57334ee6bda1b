"""Blob stores: the folder (default) and the database (several gateways, no shared disk).

Both keep content once by its sha256, give it back whole or in chunks, and refuse
nothing silently."""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa

from store import durable, raw
from store.db import Database
from store.dbblobs import DatabaseBlobStore
from store.errors import StoreUnavailable
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


def test_a_file_store_makes_its_folders_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    store = BlobStore(root, suffix=".eml")
    refs = [store.keep(f"mail {n}".encode()) for n in range(40)]
    assert all(store.read(ref.sha256) == f"mail {n}".encode() for n, ref in enumerate(refs))
    names = [p.name for p in root.rglob("*") if p.is_file()]
    assert sorted(names) == sorted(f"{ref.sha256}.eml" for ref in refs)
    assert store.path_for(refs[0].sha256) == root / refs[0].sha256[:2] / f"{refs[0].sha256}.eml"


def test_a_temporary_name_left_by_a_crash_is_skipped_not_overwritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that died mid-write leaves ``.tmp-<pid>-<n>``; a later one with the same
    pid must take another name and leave that file alone (it is not a blob)."""
    monkeypatch.setattr(raw, "_temp_numbers", itertools.count(7))
    content = b"after the crash"
    folder = tmp_path / hashlib.sha256(content).hexdigest()[:2]
    folder.mkdir()
    stale = folder / f".tmp-{os.getpid()}-7"
    stale.write_bytes(b"half a mail")
    ref = BlobStore(tmp_path).keep(content)
    assert BlobStore(tmp_path).read(ref.sha256) == content
    assert stale.read_bytes() == b"half a mail"
    assert sorted(p.name for p in folder.iterdir()) == sorted([stale.name, ref.sha256])


def test_a_failed_write_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    store = BlobStore(tmp_path)
    store.keep(b"first")  # its folder exists: the failure is the second mail's own
    monkeypatch.setattr(raw.os, "fsync", full_disk)
    with pytest.raises(StoreUnavailable):
        store.keep(b"second")
    assert not store.exists(hashlib.sha256(b"second").hexdigest())
    assert not list(tmp_path.rglob(".tmp-*"))


def test_a_folder_made_by_another_writer_has_its_parent_synced_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder another thread or process made may be there before its maker synced the
    parent: the first blob written into it here syncs the parent too, later ones not."""
    synced: list[Path] = []
    sync = durable.fsync_dir

    def recorded(folder: Path) -> None:
        synced.append(folder)
        sync(folder)

    monkeypatch.setattr(durable, "fsync_dir", recorded)
    first, neighbour = b"first", b"mail 102"  # two blobs of one folder
    folder = tmp_path / hashlib.sha256(first).hexdigest()[:2]
    assert hashlib.sha256(neighbour).hexdigest()[:2] == folder.name
    folder.mkdir()  # made by someone else
    store = BlobStore(tmp_path)
    store.keep(first)
    assert synced == [folder, tmp_path]
    synced.clear()
    store.keep(neighbour)
    assert synced == [folder]


def test_blobs_kept_for_a_batch_are_synced_together_after_being_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``durable=False`` writes and renames without an fsync; ``make_durable`` then syncs
    the file system once for all of them (one journal commit, not two per blob)."""
    fsynced: list[int] = []
    syncfs_calls: list[int] = []
    real_fsync, real_syncfs = os.fsync, durable.syncfs
    assert real_syncfs is not None, "this machine's libc has syncfs (Linux)"

    def recorded_fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    def recorded_syncfs(fd: int) -> int:
        syncfs_calls.append(fd)
        return real_syncfs(fd)

    monkeypatch.setattr(os, "fsync", recorded_fsync)
    monkeypatch.setattr(durable, "syncfs", recorded_syncfs)
    store = BlobStore(tmp_path / "raw")
    refs = [store.keep(f"mail {n}".encode(), durable=False) for n in range(20)]
    assert all(store.read(ref.sha256) == f"mail {n}".encode() for n, ref in enumerate(refs))
    assert fsynced == [] and syncfs_calls == []
    store.make_durable(ref.sha256 for ref in refs)
    assert fsynced == [] and len(syncfs_calls) == 1
    store.make_durable([])  # nothing kept: nothing to sync
    assert len(syncfs_calls) == 1


def test_without_syncfs_each_file_its_folder_and_the_root_are_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files: list[Path] = []
    folders: list[Path] = []
    monkeypatch.setattr(durable, "syncfs", None)  # not Linux
    monkeypatch.setattr(durable, "fsync_file", files.append)
    monkeypatch.setattr(durable, "fsync_dir", folders.append)
    store = BlobStore(tmp_path, suffix=".eml")
    refs = [store.keep(f"mail {n}".encode(), durable=False) for n in range(3)]
    assert files == [] and folders == []
    store.make_durable([ref.sha256 for ref in refs] * 2)
    assert sorted(files) == sorted(store.path_for(ref.sha256) for ref in refs)
    assert sorted(folders[:-1]) == sorted({store.path_for(ref.sha256).parent for ref in refs})
    assert folders[-1] == tmp_path


def test_a_failed_sync_is_a_store_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fd: int) -> int:
        ctypes.set_errno(5)
        return -1

    monkeypatch.setattr(durable, "syncfs", failing)
    store = BlobStore(tmp_path)
    ref = store.keep(b"a mail", durable=False)
    with pytest.raises(StoreUnavailable, match="Input/output error"):
        store.make_durable([ref.sha256])


@pytest.mark.parametrize("left", [b"", b"half a m", b"half a mXil"])
def test_a_blob_left_short_or_wrong_by_a_crash_is_written_again(
    tmp_path: Path, left: bytes
) -> None:
    """A blob kept with ``durable=False`` may be empty or short after a power loss (its
    batch was never committed nor acknowledged): the sender's retry must not trust the
    name and take the broken file as the mail."""
    content = b"half a mail"
    store = BlobStore(tmp_path)
    path = store.path_for(hashlib.sha256(content).hexdigest())
    path.parent.mkdir()
    path.write_bytes(left)
    for synced in (False, True):
        ref = store.keep(content, durable=synced)
        assert store.read(ref.sha256) == content
        path.write_bytes(left)


def test_a_durable_keep_of_a_blob_another_writer_left_unsynced_syncs_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = BlobStore(tmp_path)
    ref = store.keep(b"kept by a preparer", durable=False)
    files: list[Path] = []
    folders: list[Path] = []
    monkeypatch.setattr(durable, "fsync_file", files.append)
    monkeypatch.setattr(durable, "fsync_dir", folders.append)
    assert store.keep(b"kept by a preparer") == ref
    assert files == [store.path_for(ref.sha256)]
    # The folder was made by the unsynced writer: its entry in the root is synced too.
    assert folders == [store.path_for(ref.sha256).parent, tmp_path]
