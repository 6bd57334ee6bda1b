"""``mailgate serve``: the SMTP listener, the outbox dispatcher and the periodic jobs,
in one asyncio loop until asked to stop (SIGTERM/SIGINT), finishing mails in flight.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from mailgate.app import Gateway
from mailgate.sources.smtp import SmtpHandler, SmtpListener
from store.errors import StoreUnavailable

log = logging.getLogger(__name__)

Ready = Callable[[str, int], None]


async def run_gateway(
    gateway: Gateway,
    stop: asyncio.Event,
    *,
    ready: Ready | None = None,
    dispatch_interval: float = 2.0,
    reuse_port: bool = False,
) -> None:
    settings = gateway.settings
    executor = ThreadPoolExecutor(settings.smtp.workers, thread_name_prefix="prepare")
    committer = gateway.committer()
    handler = SmtpHandler(
        gateway.pipeline, committer, gateway.ours, settings.smtp, executor, gateway.clock
    )
    listener = SmtpListener(handler, settings.smtp, reuse_port=reuse_port)
    host, port = await listener.start()
    if ready is not None:
        ready(host, port)
    loops = [
        asyncio.create_task(_every(dispatch_interval, "outbox", gateway.dispatcher.run_once)),
    ]
    try:
        await stop.wait()
    finally:
        log.info("stopping: finishing mails in flight")
        await listener.stop()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, return_exceptions=True)
        committer.stop()
        executor.shutdown(wait=True)


async def _every(interval: float, name: str, job: Callable[[], object]) -> None:
    """Run ``job`` in a thread every ``interval`` seconds; failures are logged, not fatal."""
    loop = asyncio.get_running_loop()
    while True:
        try:
            await loop.run_in_executor(None, job)
        except StoreUnavailable as exc:
            log.warning("%s: store unavailable, will retry: %s", name, exc)
        except Exception:
            log.exception("%s job failed; will retry", name)
        await asyncio.sleep(interval)


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
