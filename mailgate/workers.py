"""``mailgate serve --workers N``: N gateway processes sharing one SMTP port.

Each worker is a whole gateway (listener, group committer, outbox dispatcher, periodic
jobs) in its own process, so N workers use N cores; they bind the same port with
SO_REUSEPORT and the kernel spreads incoming connections across them. Everything they
share goes through the store (the outbox is claimed with SKIP LOCKED, duplicates meet a
unique key, exclusive work takes a ``store.locks`` lock), exactly as for gateways on
several machines.

The parent only supervises: it upgrades the schema once, starts the workers, restarts
one that dies (after a pause that grows while it keeps dying), and on SIGTERM/SIGINT
passes SIGTERM on and waits until every worker has finished its mails in flight. The
workers ask the kernel for SIGTERM should the parent itself die.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from mailgate.config import Settings

log = logging.getLogger(__name__)

WORKER_LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"
STOP_GRACE_SECONDS = 60.0  # a worker still busy after this is killed
START_TIMEOUT_SECONDS = 120.0
_RESTART_PAUSE_MAX = 30.0
_STABLE_SECONDS = 60.0  # a worker that lived this long starts again without a pause

Ready = Callable[[str, int, int], None]  # host, port, number of workers


class WorkerStartError(RuntimeError):
    """A worker could not start (port taken, store unreachable): nothing is serving."""


@dataclass
class _Worker:
    slot: int
    process: BaseProcess
    reports: Connection  # the worker sends (host, port) once it listens
    started: float
    listening: bool = False
    pause: float = 0.0  # the pause before this start; doubles while the worker keeps dying
    restart_at: float | None = None


class Supervisor:
    """Starts, watches and stops the worker processes of one ``serve``."""

    def __init__(self, settings: Settings, count: int, *, verbose: bool = False) -> None:
        if count < 1:
            raise ValueError("--workers needs at least one worker")
        self.settings = settings
        self.count = count
        self.verbose = verbose
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._reserved: socket.socket | None = None

    def run(self, ready: Ready | None = None) -> None:
        """Serve until SIGTERM/SIGINT; raises ``WorkerStartError`` if a worker cannot start."""
        self._prepare_store()
        self.settings = self._with_fixed_port(self.settings)
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for slot in range(self.count):
                self._start(slot)
            self._wait_until_listening()
            if ready is not None:
                ready(self.settings.smtp.host, self.settings.smtp.port, self.count)
            while not self._stopping:
                self._watch(timeout=0.5)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if self._reserved is not None:
                self._reserved.close()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: stopping the workers", signal.Signals(signum).name)
        self._stopping = True

    def _prepare_store(self) -> None:
        # Once, here: N workers racing to create a fresh SQLite schema would collide.
        from store.db import Database
        from store.meta import server_secret

        db = Database(self.settings.store.url, busy_timeout_ms=self.settings.store.busy_timeout_ms)
        try:
            db.upgrade()
            server_secret(db)
        finally:
            db.dispose()

    def _with_fixed_port(self, settings: Settings) -> Settings:
        """Port 0 means "any free port": choose it once, so that every worker shares it."""
        if settings.smtp.port != 0:
            return settings
        reserved = socket.socket(socket.AF_INET6 if ":" in settings.smtp.host else socket.AF_INET)
        reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reserved.bind((settings.smtp.host, 0))
        self._reserved = reserved  # bound, never listening: keeps the port ours
        port = int(reserved.getsockname()[1])
        return settings.model_copy(update={"smtp": settings.smtp.model_copy(update={"port": port})})

    def _start(self, slot: int, pause: float = 0.0) -> None:
        reports, sender = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker,
            args=(self.settings, slot, self.verbose, os.getpid(), sender),
            name=f"worker-{slot}",
            daemon=False,
        )
        process.start()
        sender.close()
        self._workers[slot] = _Worker(slot, process, reports, time.monotonic(), pause=pause)

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not all(w.listening for w in self._workers.values()):
            if self._stopping:
                return
            if time.monotonic() > deadline:
                raise WorkerStartError("workers did not start listening in time")
            for worker in self._workers.values():
                if not worker.listening and not worker.process.is_alive():
                    raise WorkerStartError(
                        f"worker {worker.slot} exited with {worker.process.exitcode} "
                        "before listening (see the lines above)"
                    )
            self._watch(timeout=0.2, restart=False)

    def _watch(self, timeout: float, *, restart: bool = True) -> None:
        waiting = [w.reports for w in self._workers.values() if not w.listening]
        sentinels = [w.process.sentinel for w in self._workers.values() if w.process.is_alive()]
        if waiting or sentinels:
            wait([*waiting, *sentinels], timeout=timeout)
        else:
            time.sleep(timeout)  # every worker is dead and waiting for its restart
        now = time.monotonic()
        for worker in list(self._workers.values()):
            if not worker.listening and worker.reports.poll():
                try:
                    worker.reports.recv()
                    worker.listening = True
                except EOFError:
                    pass  # died before listening: seen below
            if not restart or self._stopping or worker.process.is_alive():
                continue
            if worker.restart_at is None:
                self._schedule_restart(worker, now)
            elif now >= worker.restart_at:
                worker.reports.close()
                self._start(worker.slot, worker.pause)

    def _schedule_restart(self, worker: _Worker, now: float) -> None:
        lived = now - worker.started
        worker.pause = (
            0.0 if lived > _STABLE_SECONDS else min(max(1.0, worker.pause * 2), _RESTART_PAUSE_MAX)
        )
        worker.restart_at = now + worker.pause
        log.warning(
            "worker %s exited with %s after %.0f s; starting it again in %.0f s",
            worker.slot,
            worker.process.exitcode,
            lived,
            worker.pause,
        )

    def _stop_all(self) -> None:
        for worker in self._workers.values():
            if worker.process.is_alive() and worker.process.pid is not None:
                os.kill(worker.process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for worker in self._workers.values():
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.error(
                    "worker %s still busy after %.0f s: killed", worker.slot, STOP_GRACE_SECONDS
                )
                worker.process.kill()
                worker.process.join()
            worker.reports.close()
        self._workers.clear()


def run_worker(
    settings: Settings, slot: int, verbose: bool, parent_pid: int, reports: Connection
) -> None:
    """The body of one worker process: a whole gateway on the shared port."""
    from mailgate.app import build_gateway
    from mailgate.logs import configure_logging
    from mailgate.serve import run_until_signalled

    _die_with_parent(parent_pid)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format=WORKER_LOG_FORMAT
    )
    configure_logging(settings.log, mail_lines=True)
    try:
        gateway = build_gateway(settings, upgrade=False)
    except Exception as exc:
        log.error("worker %s cannot start: %s", slot, exc)
        raise SystemExit(1) from None

    def listening(host: str, port: int) -> None:
        reports.send((host, port))
        reports.close()

    try:
        run_until_signalled(gateway, ready=listening, reuse_port=True)
    except OSError as exc:
        log.error("worker %s cannot listen: %s", slot, exc)
        raise SystemExit(1) from None
    finally:
        gateway.close()


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGTERM when the supervisor dies, so no worker is left orphaned."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: a supervisor that dies leaves its workers to the service manager
    if os.getppid() != parent_pid:  # the parent died before we asked
        raise SystemExit(0)
