"""``mailgate serve``: the SMTP listener, the outbox dispatcher and the periodic jobs,
in one asyncio loop until asked to stop (SIGTERM/SIGINT), finishing mails in flight;
beside it one thread per IMAP mailbox (imapclient blocks), each failing on its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

from mailgate.alignment import load_suffix_list
from mailgate.app import Gateway
from mailgate.language import load_language_model
from mailgate.sources.smtp import SmtpHandler, SmtpListener
from store.day_totals import sync_limits
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)

Ready = Callable[[str, int], None]


def _keep_stats_targets(gateway: Gateway) -> None:
    """Write the SLA targets that stats' per-day verdicts are judged by
    (``store/day_totals.py``). Mail does not depend on them: a store too busy for it now
    leaves stats counting the verdicts itself until the next start or ``db upgrade``."""
    try:
        with gateway.db.write() as session:
            if sync_limits(session, gateway.sla):
                log.info("stats: SLA verdicts counted again by the configured targets")
    except StoreUnavailable as exc:
        log.warning("stats: SLA targets not written (%s); stats counts the verdicts itself", exc)


async def run_gateway(
    gateway: Gateway,
    stop: asyncio.Event,
    *,
    ready: Ready | None = None,
    dispatch_interval: float = 2.0,
    schedule_interval: float | None = None,
    reuse_port: bool = False,
) -> None:
    settings = gateway.settings
    # Before the first mail, so that no mail waits for them and no mail's peak memory
    # includes them (bench/README.md, Memory); every worker of ``serve --workers`` runs this.
    load_language_model()
    load_suffix_list()
    _keep_stats_targets(gateway)
    preparing = gateway.prepare_pool()
    committer = gateway.committer()
    handler = SmtpHandler(
        preparing=preparing,
        committer=committer,
        ours=gateway.ours,
        settings=settings.smtp,
        clock=gateway.clock,
    )
    listener = SmtpListener(handler, settings.smtp, reuse_port=reuse_port)
    try:
        host, port = await listener.start()
    except BaseException:
        committer.stop()
        preparing.close()
        raise
    if ready is not None:
        ready(host, port)
    loops = [
        # A round that stops at its limit leaves mails due: the next one starts at once.
        asyncio.create_task(
            _every(dispatch_interval, "outbox", lambda: gateway.dispatcher.run_once().more, stop)
        ),
        # The periodic jobs of ``schedule run``; the outbox has its own, faster loop above.
        asyncio.create_task(
            _every(
                schedule_interval or settings.workflow.schedule_interval,
                "schedule",
                lambda: gateway.scheduler.run_once(outbox=False),
                stop,
            )
        ),
    ]
    stop_polling = threading.Event()
    pollers = _start_pollers(gateway, stop_polling)
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing mails in flight")
        stop_polling.set()
        await listener.stop()
        # A poller finishes the mail in hand (commit, then move) before it returns.
        await asyncio.get_running_loop().run_in_executor(None, _join, pollers)
        # The periodic loops end after the job in hand: a cancelled await would leave its
        # thread running on a database that is about to be closed.
        stop.set()
        await asyncio.gather(*loops, return_exceptions=True)
        committer.stop()
        preparing.close()


async def _every(
    interval: float, name: str, job: Callable[[], object], stop: asyncio.Event
) -> None:
    """Run ``job`` in a thread every ``interval`` seconds until ``stop``, and again at
    once when it returns True (it has more to do); failures are logged, not fatal."""
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        try:
            if await loop.run_in_executor(None, job) is True:
                continue
        except StoreUnavailable as exc:
            log.warning("%s: store unavailable, will retry: %s", name, exc)
        except Exception:
            log.exception("%s job failed; will retry", name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def _start_pollers(gateway: Gateway, stop: threading.Event) -> list[threading.Thread]:
    threads = []
    for poller in gateway.imap_pollers():
        thread = threading.Thread(
            target=poller.run, args=(stop,), name=f"imap-{poller.name}", daemon=True
        )
        thread.start()
        threads.append(thread)
    return threads


def _join(threads: list[threading.Thread], timeout: float = 60.0) -> None:
    for thread in threads:
        thread.join(timeout)
        if thread.is_alive():
            log.warning("%s did not stop within %.0f s", thread.name, timeout)


def run_until_signalled(
    gateway: Gateway, *, ready: Ready | None = None, reuse_port: bool = False
) -> None:
    import signal

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_gateway(gateway, stop, ready=ready, reuse_port=reuse_port)

    asyncio.run(main())


__all__ = ["run_gateway", "run_until_signalled"]
