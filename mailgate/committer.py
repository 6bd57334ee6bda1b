"""Group commit: mails prepared in parallel share one transaction, each still acknowledged
only after that transaction is committed.

One thread owns the writing. Whatever has queued up while the previous batch committed
forms the next batch (at most ``max_batch`` mails), so under load one fsync serves many
mails and under light load a mail waits for nobody.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future

from mailgate.apply import Outcome
from mailgate.pipeline import Pipeline
from mailgate.preparer import Prepared

log = logging.getLogger(__name__)
_STOP = object()


class GroupCommitter:
    def __init__(self, pipeline: Pipeline, *, max_batch: int = 64) -> None:
        self.pipeline = pipeline
        self.max_batch = max_batch
        self._queue: queue.Queue[object] = queue.Queue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop the writer thread."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None

    def submit(self, prepared: Prepared) -> Future[Outcome]:
        future: Future[Outcome] = Future()
        self._queue.put((prepared, future))
        return future

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch: list[tuple[Prepared, Future[Outcome]]] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                batch.append(item)  # type: ignore[arg-type]
                if len(batch) >= self.max_batch:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if batch:
                self._commit(batch)

    def _commit(self, batch: list[tuple[Prepared, Future[Outcome]]]) -> None:
        try:
            outcomes = self.pipeline.commit([prepared for prepared, _ in batch])
        except BaseException as exc:  # every waiting mail hears of it (451), none is lost
            if not isinstance(exc, Exception):
                raise
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            future.set_result(outcome)
