"""Writers of one process take SQLite's write lock first come, first served."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from store.db import Database
from store.errors import StoreUnavailable
from store.meta import get_value, set_value
from store.turns import WriteTurns


def _wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_writers_get_their_turn_in_the_order_they_asked() -> None:
    turns = WriteTurns()
    order: list[str] = []
    release = threading.Event()

    def writer(name: str) -> None:
        with turns.turn(5):
            order.append(name)
            if name == "first":
                release.wait(5)

    first = threading.Thread(target=writer, args=("first",))
    first.start()
    _wait_until(lambda: order == ["first"])
    later = []
    for name in ("second", "third", "fourth"):
        thread = threading.Thread(target=writer, args=(name,))
        thread.start()
        later.append(thread)
        in_line = 1 + len(later)
        _wait_until(lambda: turns.waiting == in_line)  # noqa: B023 (used at once)
    release.set()
    for thread in (first, *later):
        thread.join(5)
    assert order == ["first", "second", "third", "fourth"]
    assert turns.waiting == 0


def test_a_writer_that_waits_too_long_steps_out_of_line_and_the_rest_move_up() -> None:
    turns = WriteTurns()
    holding, release = threading.Event(), threading.Event()
    got: list[str] = []

    def holder() -> None:
        with turns.turn(5):
            holding.set()
            release.wait(5)

    def patient() -> None:
        with turns.turn(5):
            got.append("patient")

    first = threading.Thread(target=holder)
    first.start()
    holding.wait(5)
    with pytest.raises(StoreUnavailable, match="no write turn"), turns.turn(0.05):
        pass
    second = threading.Thread(target=patient)
    second.start()
    _wait_until(lambda: turns.waiting == 2)
    release.set()
    first.join(5)
    second.join(5)
    assert got == ["patient"]
    assert turns.waiting == 0


def test_a_second_writer_is_served_between_two_batches_of_a_busy_one(tmp_path: Path) -> None:
    """The outbox dispatcher's case: a committer that starts its next transaction the
    moment the last one ends must not keep another writer out for the whole burst."""
    db = Database(f"sqlite:///{tmp_path}/m.db")
    db.upgrade()
    stop = threading.Event()
    batches = 0

    def busy_committer() -> None:
        nonlocal batches
        while not stop.is_set():
            with db.write() as session:
                set_value(session, "burst", str(batches))
                time.sleep(0.01)  # the work of a batch, holding the write lock
            batches += 1

    committer = threading.Thread(target=busy_committer)
    committer.start()
    try:
        _wait_until(lambda: batches >= 3)
        started = batches
        with db.write() as session:  # the dispatcher's claim
            set_value(session, "claimed", "yes")
        waited = batches - started
    finally:
        stop.set()
        committer.join(5)
    with db.read() as session:
        assert get_value(session, "claimed") == "yes"
    assert waited <= 2  # served after the batch in progress, not after the burst
    db.dispose()
