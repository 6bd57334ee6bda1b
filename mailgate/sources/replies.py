"""Every reply the SMTP listener can give, with its enhanced status code (RFC 3463).

Tests assert with these same constants. aiosmtpd's own texts for size and line limits
carry no enhanced code; ``MailgateSMTP`` rewrites them through ``REWRITES``.
"""

from __future__ import annotations

ACCEPTED = "250 2.0.0 Message accepted"
RECIPIENT_OK = "250 2.1.5 Recipient OK"
UNKNOWN_RECIPIENT = "550 5.1.1 Recipient address rejected: no such mailbox here"
TOO_BIG = "552 5.3.4 Message too big for this system"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
LINE_TOO_LONG = "500 5.5.2 Line too long"
STORE_UNAVAILABLE = "451 4.3.0 Temporary failure, please try again later"
POLICY_REJECTED = "554 5.7.1 Message rejected by policy"
COMMAND_TOO_LONG = "500 5.5.2 Command line too long"
TOO_MANY_CONNECTIONS = "421 4.3.2 Too many connections, try again later"
SESSION_TOO_LONG = "421 4.4.2 Connection open too long, closing"

# aiosmtpd's texts (by prefix) → ours.
REWRITES = {
    "552 Error: message size exceeds fixed maximum": TOO_BIG,
    "552 Error: Too much mail data": TOO_BIG,
    "500 Line too long": LINE_TOO_LONG,
    "500 Command line too long": COMMAND_TOO_LONG,
}


def rewrite(status: str) -> str:
    for prefix, ours in REWRITES.items():
        if status.startswith(prefix):
            return ours
    return status
