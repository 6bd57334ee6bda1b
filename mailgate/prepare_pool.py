"""Preparing mails in child processes, so that their parsing runs beside the writer.

A gateway process runs its Python on one core at a time. Under SMTP load the
group-commit thread waited for the interpreter lock about as long as it ran, held
by the threads that parse, screen and authenticate the next mails (``bench/README.md``,
"Preparing in child processes"). ``PreparePool`` moves that half of the pipeline
(``mailgate.preparer``) to ``processes`` children:

- each child builds its own ``Preparer`` from the settings (blobs kept in folders: it
  writes the raw mail and the attachment files itself, as a thread would; the parent
  syncs a batch's files before committing it)
  and runs ``threads`` threads, because preparing mostly waits for DNS (DKIM keys and
  DMARC policies);
- the parent sends each ``Arrival`` pickled and gets its ``Prepared`` back without the
  raw bytes (the parent still holds them); one sender and one reader thread per child
  do the pickling, so an event loop that submits never blocks on a pipe;
- a mail of more than ``inline_limit`` bytes is prepared by ``fallback`` in the parent
  instead, so that its bytes are never copied to another process (the 25 MB attachment
  of ``bench.memory``);
- a child that dies fails the mails it held with ``StoreUnavailable`` (451, exit 75: the
  sender tries again; the raw file it may have written is content-addressed, so the
  retry writes the same file), and a new child is started for the next mail.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import queue
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from mailgate.config import Settings
from mailgate.preparer import Prepared
from mailgate.values import Arrival
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)

INLINE_LIMIT = 1 << 20  # bytes; larger mails are prepared in the parent
START_TIMEOUT_SECONDS = 120.0
_READY = "ready"

Fallback = Callable[[Arrival], Prepared]


@dataclass
class _Child:
    process: BaseProcess
    conn: Connection
    outgoing: queue.SimpleQueue[tuple[int, Arrival] | None] = field(
        default_factory=queue.SimpleQueue
    )
    pending: dict[int, tuple[Future[Prepared], Arrival]] = field(default_factory=dict)
    alive: bool = True
    ready: threading.Event = field(default_factory=threading.Event)
    # Held to write to ``conn`` and to close it: a sender that wrote after the close could
    # write into a new child's pipe, which the system may give the same file descriptor.
    writing: threading.Lock = field(default_factory=threading.Lock)


class PreparePool:
    """``submit(arrival)`` → a future ``Prepared``, made in a child process (with
    ``processes=0``, or for a large mail, by ``fallback`` in one of ``threads`` threads)."""

    def __init__(
        self,
        settings: Settings,
        *,
        processes: int,
        threads: int,
        fallback: Fallback,
        inline_limit: int = INLINE_LIMIT,
    ) -> None:
        self._settings = settings
        self._processes = processes
        self._threads = max(1, threads)
        self._fallback = fallback
        self._inline_limit = inline_limit
        self._context = multiprocessing.get_context("spawn")
        self._children: list[_Child | None] = [None] * processes
        self._lock = threading.Lock()  # guards _children and every child's pending
        self._jobs = itertools.count()
        self._local = ThreadPoolExecutor(self._threads, thread_name_prefix="prepare")
        self._closed = False

    def start(self, *, wait: bool = True) -> None:
        """Start every child. ``wait``: until each can prepare (the language model
        loaded), so that no mail waits for a start-up (``serve``, before it listens).
        Otherwise the mails submitted before a child is ready are prepared in this
        process's threads (an import: its first mails, instead of a second of nothing)."""
        with self._lock:
            for slot in range(self._processes):
                if self._children[slot] is None:
                    self._children[slot] = self._spawn()
        if wait:
            for child in list(self._children):
                if child is not None:
                    self._await_ready(child)

    def submit(self, arrival: Arrival) -> Future[Prepared]:
        if self._closed:
            raise StoreUnavailable("the gateway is stopping", operation="prepare")
        if not self._processes or len(arrival.raw) > self._inline_limit:
            return self._local.submit(self._fallback, arrival)
        future: Future[Prepared] = Future()
        with self._lock:
            slot, child = self._least_busy()
            if child is None:
                child = self._children[slot] = self._spawn()
            ready = child.ready.is_set()
            if ready:
                job = next(self._jobs)
                child.pending[job] = (future, arrival)
        if not ready:  # still starting (or a replacement): no mail waits for that
            return self._local.submit(self._fallback, arrival)
        child.outgoing.put((job, arrival))
        return future

    def pids(self) -> list[int]:
        """The process ids of the running children."""
        with self._lock:
            return [c.process.pid for c in self._children if c is not None and c.process.pid]

    def close(self) -> None:
        """Let the children finish what they hold, then stop them."""
        with self._lock:
            self._closed = True
            children = [c for c in self._children if c is not None]
        for child in children:
            child.outgoing.put(None)
        for child in children:
            child.process.join(30)
            if child.process.is_alive():
                child.process.kill()
                child.process.join()
        self._local.shutdown(wait=True)

    # --- the parent's side ---------------------------------------------------------
    def _least_busy(self) -> tuple[int, _Child | None]:
        best = 0
        for slot, child in enumerate(self._children):
            if child is None or not child.alive:
                self._children[slot] = None
                return slot, None
            current = self._children[best]
            if current is not None and len(child.pending) < len(current.pending):
                best = slot
        return best, self._children[best]

    def _spawn(self) -> _Child:
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_child_main,
            args=(child_end, self._settings, self._threads),
            name="prepare-process",
            daemon=True,
        )
        process.start()
        child_end.close()
        child = _Child(process, parent_end)
        threading.Thread(target=self._send, args=(child,), name="prepare-send", daemon=True).start()
        threading.Thread(target=self._read, args=(child,), name="prepare-read", daemon=True).start()
        return child

    def _await_ready(self, child: _Child) -> None:
        for _ in range(int(START_TIMEOUT_SECONDS / 0.1)):
            if child.ready.wait(0.1):
                return
            if not child.alive:
                break
        raise StoreUnavailable("a prepare process did not start", operation="prepare")

    def _send(self, child: _Child) -> None:
        while (item := child.outgoing.get()) is not None:
            if not self._write(child, item):
                self._lost(child)
                child.process.kill()  # its pipe is broken: make sure it ends
                return
        if child.alive:  # the pool is closing: ask the child to finish and stop
            self._write(child, None)

    @staticmethod
    def _write(child: _Child, item: tuple[int, Arrival] | None) -> bool:
        with child.writing:
            if child.conn.closed:
                return False
            try:
                child.conn.send(item)
            except (OSError, ValueError):
                return False
            return True

    def _read(self, child: _Child) -> None:
        while True:
            try:
                message = child.conn.recv()
            except (EOFError, OSError):
                break
            if message == _READY:
                child.ready.set()
                continue
            job, prepared, error = message
            with self._lock:
                future, arrival = child.pending.pop(job)
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(replace(prepared, arrival=arrival))
        self._lost(child)
        with child.writing:  # the reader closes the pipe: nobody reads it any more
            child.conn.close()

    def _lost(self, child: _Child) -> None:
        with self._lock:
            was_alive, child.alive = child.alive, False
            pending = list(child.pending.values())
            child.pending.clear()
        if was_alive and not child.ready.is_set():
            log.error("a prepare process ended before it was ready; its mails go to threads")
        if pending:
            log.error("a prepare process ended with %d mails in hand; answered 451", len(pending))
        for future, _ in pending:
            future.set_exception(StoreUnavailable("the prepare process ended", operation="prepare"))
        if was_alive:
            child.outgoing.put(None)  # ends the sender thread


# --- the child's side ---------------------------------------------------------------
def _child_main(conn: Connection, settings: Settings, threads: int) -> None:
    from mailgate.alignment import load_suffix_list
    from mailgate.app import file_preparer
    from mailgate.language import load_language_model
    from mailgate.logs import configure_logging

    # Ctrl-C reaches the whole process group: the parent decides when to stop (it sends
    # None once its mails in flight are done), or its end of the pipe closes as it dies.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings.log)  # a stage's warnings, as the parent writes them
    load_language_model()
    load_suffix_list()
    preparer = file_preparer(settings)
    send_lock = threading.Lock()

    def run(job: int, arrival: Arrival) -> None:
        reply: tuple[int, Prepared | None, BaseException | None]
        try:
            prepared = preparer.prepare(arrival)
            reply = (job, replace(prepared, arrival=replace(arrival, raw=b"")), None)
        except BaseException as exc:  # sent back: the parent answers for the mail
            reply = (job, None, _picklable(exc))
        with send_lock:
            conn.send(reply)

    conn.send(_READY)
    with ThreadPoolExecutor(threads, thread_name_prefix="prepare") as pool:
        while True:
            try:
                item = conn.recv()
            except (EOFError, OSError):
                break
            if item is None:
                break
            pool.submit(run, *item)


def _picklable(exc: BaseException) -> BaseException:
    if isinstance(exc, StoreUnavailable):
        return StoreUnavailable(str(exc), operation=exc.operation)
    return StoreUnavailable(f"preparing failed: {type(exc).__name__}: {exc}", operation="prepare")
