"""A poller in a process of its own that kills itself with SIGKILL at a hook point: a
crash the IMAP crash tests can place exactly (``test_imap_crash.py``).

Usage: ``python imap_child.py CONFIG MAILBOX POINT UID`` — POINT is a ``PollerHooks``
field (``after_fetch``, ``after_commit``, ``before_move``) or ``none``; UID the mail at
which to die, or ``any``. Without a kill, the process runs one round and exits 0.
"""

from __future__ import annotations

import os
import signal
import sys

from mailgate.app import build_gateway
from mailgate.config import load_settings
from mailgate.sources.imap import ImapPoller, PollerHooks


def main(config: str, mailbox: str, point: str, uid: str) -> None:
    settings = load_settings(config)
    [mailbox_settings] = [m for m in settings.imap if m.name == mailbox]
    gateway = build_gateway(settings)

    def die(at: int) -> None:
        if uid == "any" or at == int(uid):
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: a real crash

    hooks = PollerHooks() if point == "none" else PollerHooks(**{point: die})
    poller = ImapPoller(mailbox_settings, gateway.pipeline, gateway.db, gateway.clock, hooks=hooks)
    poller.poll_once()
    poller.disconnect()
    gateway.close()


if __name__ == "__main__":
    main(*sys.argv[1:5])
