"""Outbound mail: from a decided notification to a mail handed to the relay.

``compose`` renders a ``Notification`` into a ``RenderedMail`` (stage 8, inside the
pipeline's transaction, stored with ``store.outbox.enqueue``); ``dispatcher`` sends the
outbox with retries (stage 9) through a ``transports`` ``Transport``.
"""

from mailgate.outbound.compose import Composer, Notification, RenderedMail, status_text
from mailgate.outbound.dispatcher import Dispatcher, DispatchReport
from mailgate.outbound.transports import (
    MaildirTransport,
    RecordingTransport,
    SentMail,
    SmtpTransport,
    Transport,
    transport_from_settings,
)

__all__ = [
    "Composer",
    "DispatchReport",
    "Dispatcher",
    "MaildirTransport",
    "Notification",
    "RecordingTransport",
    "RenderedMail",
    "SentMail",
    "SmtpTransport",
    "Transport",
    "status_text",
    "transport_from_settings",
]
