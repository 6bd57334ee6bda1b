"""Passwords of the mailboxes we log in to: from an environment variable, or from a file
only the service can read — never from the config file, which ends up in backups, diffs
and support tickets.

Read when a connection is made (not when the config is loaded), so a rotated password
file is picked up at the next reconnect without a restart.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from mailgate.errors import ConfigError

# Group or others may do anything at all with the file: the secret is not ours alone.
_SHARED_BITS = 0o077


def read_password(*, env: str | None, file: str | None, what: str) -> str:
    """The password named by ``env`` (a variable) or ``file``; raises ``ConfigError``.

    ``what`` names the owner in the error (``mailbox main``).
    """
    if env is not None:
        value = os.environ.get(env)
        if value is None:
            raise ConfigError(f"{what}: the environment variable {env} (its password) is not set")
        return value
    if file is not None:
        return read_password_file(Path(file), what=what)
    raise ConfigError(f"{what}: no password configured (password_env or password_file)")


def read_password_file(path: Path, *, what: str) -> str:
    """The first line of ``path``, which must belong to us and be closed to everyone else.

    Raises ``ConfigError`` for a missing, unreadable, shared or empty file.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read password file {path}: {exc.strerror}") from exc
    with os.fdopen(fd, "rb") as handle:
        # The checks look at the file actually opened, so a swap after them changes nothing.
        info = os.fstat(handle.fileno())
        mode = stat.S_IMODE(info.st_mode)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what}: password file {path} is not a regular file")
        if mode & _SHARED_BITS:
            raise ConfigError(
                f"{what}: password file {path} is open to other users (mode {mode:04o}); "
                f"run: chmod 600 {path}"
            )
        if info.st_uid != os.geteuid():
            raise ConfigError(
                f"{what}: password file {path} belongs to uid {info.st_uid}, "
                f"not to the service (uid {os.geteuid()})"
            )
        content = handle.read(64 * 1024)
    try:
        lines = content.decode("utf-8").splitlines()
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: password file {path} is not UTF-8 text") from exc
    first_line = lines[0] if lines else ""
    if not first_line:
        raise ConfigError(f"{what}: password file {path} is empty")
    return first_line
