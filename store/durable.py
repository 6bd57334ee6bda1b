"""Making written files survive a crash or a power loss.

``write_all`` writes all of a content (``os.write`` may stop short). ``fsync_file`` and
``fsync_dir`` sync one file or one folder (the entries renamed into it). ``sync_files``
makes many files durable at once: where the system has ``syncfs`` (Linux), one call
writes out and syncs the whole file system they are on, its journal committed once for
all of them, rather than twice per file (an fsync of the file, then of its folder). The
raw mails and attachments of a batch (``store.raw``) and the mails of an outbound
maildir (``mailgate.outbound.transports``) are synced that way.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Collection
from pathlib import Path


def write_all(fd: int, content: bytes) -> None:
    """``os.write`` may write less than asked (a signal, a full disk): go on until done."""
    view = memoryview(content)
    while view:
        view = view[os.write(fd, view) :]


def fsync_file(path: Path) -> None:
    _fsync(path)


def fsync_dir(folder: Path) -> None:
    """The entries made or renamed in ``folder``."""
    _fsync(folder)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _find_syncfs() -> Callable[[int], int] | None:
    """Linux's ``syncfs(2)``, which ``os`` does not offer."""
    try:
        found = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError, TypeError):  # no syncfs; TypeError: Windows
        return None
    found.argtypes = [ctypes.c_int]
    found.restype = ctypes.c_int
    return found


syncfs = _find_syncfs()


def sync_files(paths: Collection[Path], root: Path) -> None:
    """Make ``paths`` (files renamed into folders under ``root``) durable; raises
    ``OSError``. With ``syncfs``: one call on ``root``'s file system. Without: an fsync
    of each file, of each of their folders, and of ``root`` (a folder made since)."""
    if not paths:
        return
    if syncfs is not None:
        _sync_file_system(syncfs, root)
        return
    for path in paths:
        fsync_file(path)
    for folder in {path.parent for path in paths}:
        fsync_dir(folder)
    fsync_dir(root)


def _sync_file_system(call: Callable[[int], int], folder: Path) -> None:
    """``syncfs`` on a descriptor opened now: Linux (5.8 and later) reports through it a
    write-back error no one has been told of yet, as fsync does."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        if call(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    finally:
        os.close(fd)
