"""Writers of one process take SQLite's write lock in the order they asked for it.

SQLite has one write lock and no queue: a writer that finds it taken sleeps and retries
(the busy timeout), and whoever retries at the right moment wins. Under a sustained
burst the group committer starts its next batch the instant the last one ends, so the
outbox dispatcher, a poller or an agent's CLI command in the same process could wait out
the whole burst and then fail. ``WriteTurns`` lines them up first come, first served.
The wait in line is bounded too (``Database`` gives it four busy timeouts, as the writers
ahead may each wait one out for another process), after which the store counts as
unavailable (451 / exit 75), as does a writer SQLite keeps out past the busy timeout.
Across processes (``serve --workers N`` on SQLite) SQLite's own retrying still decides.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from store.errors import StoreUnavailable


class WriteTurns:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._line: deque[threading.Event] = deque()

    @contextmanager
    def turn(self, timeout: float) -> Iterator[None]:
        """Hold the turn for the block; ``StoreUnavailable`` when it does not come in time."""
        me = threading.Event()
        with self._guard:
            self._line.append(me)
            if self._line[0] is me:
                me.set()
        if not me.wait(timeout):
            with self._guard:
                if not me.is_set():  # still in line: step out, the others move up
                    self._line.remove(me)
                    raise StoreUnavailable(
                        f"store unavailable: no write turn within {timeout:g} s",
                        operation="write",
                    )
        try:
            yield
        finally:
            with self._guard:
                self._line.popleft()
                if self._line:
                    self._line[0].set()

    @property
    def waiting(self) -> int:
        """Writers in line, the one holding the turn included."""
        with self._guard:
            return len(self._line)
