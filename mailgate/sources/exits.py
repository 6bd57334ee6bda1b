"""Exit codes of the pipe and import ways in (sysexits.h), from one mapping."""

from __future__ import annotations

EX_OK = 0  # accepted: a ticket message, a suspended mail, or a duplicate of one
EX_DATAERR = 65  # rejected: not a mail, or refused by policy; the MTA bounces it
EX_NOINPUT = 66  # the file or folder to read is not there, or cannot be read
EX_IOERR = 74  # some mail files could not be read; the others were taken
EX_TEMPFAIL = 75  # not committed now; the MTA keeps it and retries
