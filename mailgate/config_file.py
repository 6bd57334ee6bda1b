"""Changing the config file from the CLI (``mailboxes add`` and ``remove``) without
losing what people wrote in it: comments, order and spacing stay as they were.

A new ``[[imap]]`` table is added with tomlkit, after the last one; a table is removed
as a span of lines (with the comment lines right above it), because tomlkit files a
comment above a table under the table before it. Either way the result must load as a
whole and differ from the old configuration by exactly that one mailbox before it
replaces the file — atomically (write, fsync, rename), keeping the file's mode.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import tomlkit
from pydantic import ValidationError
from tomlkit.exceptions import TOMLKitError

from mailgate.config import ImapSettings, Settings, load_settings
from mailgate.errors import ConfigError

# A table header at the start of a line, with a bare dotted key: ``[smtp]``, ``[[imap]]``.
_HEADER = re.compile(r"^\s*\[{1,2}\s*[A-Za-z0-9_.-]+\s*\]{1,2}\s*(#.*)?$")
_IMAP_HEADER = re.compile(r"^\s*\[\[\s*imap\s*\]\]\s*(#.*)?$")
_COMMENT = re.compile(r"^\s*#")
# Written for every new mailbox, in this order; other keys only when not the default.
_SHOWN_ALWAYS = ("name", "host", "port", "security", "user", "folder", "processed_folder")


def new_mailbox(**values: Any) -> ImapSettings:
    """The ``ImapSettings`` for ``values`` (from the command line); ``ConfigError`` if bad.

    Without a password source, the password is expected in the environment variable
    ``default_password_env(name)``."""
    if values.get("password_env") is None and values.get("password_file") is None:
        values["password_env"] = default_password_env(str(values.get("name", "")))
    try:
        return ImapSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{where}: {message}" if where else message) from exc


def default_password_env(name: str) -> str:
    """``MAILGATE_IMAP_<NAME>_PASSWORD``, the variable DESIGN.md names for a mailbox."""
    return "MAILGATE_IMAP_" + re.sub(r"[^A-Z0-9]", "_", name.upper()) + "_PASSWORD"


def add_mailbox(path: Path, mailbox: ImapSettings) -> None:
    """Append ``mailbox`` as a new ``[[imap]]`` table to the config at ``path`` (created
    when missing). Raises ``ConfigError`` if the name is taken or the result is invalid."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    before = _load(path, text)
    if any(m.name.lower() == mailbox.name.lower() for m in before.imap):
        raise ConfigError(f"mailbox {mailbox.name!r} already exists in {path}")
    try:
        document = tomlkit.parse(text)
    except TOMLKitError as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    table = tomlkit.table()
    for key, value in _keys_to_write(mailbox).items():
        table.add(key, value)
    table.add(tomlkit.nl())
    mailboxes = document.get("imap")
    if mailboxes is None:
        array = tomlkit.aot()
        array.append(table)
        if text and not text.endswith("\n\n"):
            document.add(tomlkit.nl())
        document.add("imap", array)
    else:
        mailboxes.append(table)
    new_text = tomlkit.dumps(document)
    _check(path, new_text, before, (*before.imap, mailbox))
    _replace(path, new_text)


def remove_mailbox(path: Path, name: str) -> ImapSettings:
    """Remove the ``[[imap]]`` table named ``name`` (and the comments right above it) from
    the config at ``path``; returns what it held. Raises ``ConfigError``."""
    if not path.exists():
        raise ConfigError(f"no mailbox {name!r}: there is no config file {path}")
    text = path.read_text(encoding="utf-8")
    before = _load(path, text)
    index = next((i for i, m in enumerate(before.imap) if m.name.lower() == name.lower()), None)
    if index is None:
        known = ", ".join(m.name for m in before.imap) or "none"
        raise ConfigError(f"no mailbox {name!r} in {path} (configured: {known})")
    new_text = _without_imap_table(text, index)
    _check(path, new_text, before, before.imap[:index] + before.imap[index + 1 :])
    _replace(path, new_text)
    return before.imap[index]


def _keys_to_write(mailbox: ImapSettings) -> dict[str, Any]:
    """The keys people read first, then only those that differ from the defaults."""
    given = mailbox.model_dump(exclude_none=True)
    changed = mailbox.model_dump(exclude_none=True, exclude_defaults=True)
    first = {k: given[k] for k in _SHOWN_ALWAYS}
    return first | {k: v for k, v in changed.items() if k not in first}


def _without_imap_table(text: str, index: int) -> str:
    lines = text.splitlines(keepends=True)
    headers = [i for i, line in enumerate(lines) if _HEADER.match(line)]
    imap_headers = [i for i in headers if _IMAP_HEADER.match(lines[i])]
    if index >= len(imap_headers):
        raise ConfigError("the [[imap]] tables of the config file are not where expected")
    start = imap_headers[index]
    following = [i for i in headers if i > start]
    end = following[0] if following else len(lines)
    while end > start + 1 and _COMMENT.match(lines[end - 1]):
        end -= 1  # comments right above the next table belong to it
    while start > 0 and _COMMENT.match(lines[start - 1]):
        start -= 1  # and the ones right above this table, to this one
    while end < len(lines) and not lines[end].strip():
        end += 1
    kept_before = lines[:start]
    if end == len(lines):  # the last table: no blank lines left dangling at the end
        while kept_before and not kept_before[-1].strip():
            kept_before.pop()
    return "".join(kept_before + lines[end:])


def _load(path: Path, text: str) -> Settings:
    """The settings ``text`` holds (with the environment's overrides, as at run time)."""
    scratch = _scratch_path(path)
    try:
        scratch.write_text(text, encoding="utf-8")
        return load_settings(scratch)
    except ConfigError as exc:
        raise ConfigError(str(exc).replace(str(scratch), str(path))) from exc
    finally:
        scratch.unlink(missing_ok=True)


def _check(
    path: Path, new_text: str, before: Settings, mailboxes: tuple[ImapSettings, ...]
) -> None:
    after = _load(path, new_text)
    unchanged = after.model_dump(exclude={"imap"}) == before.model_dump(exclude={"imap"})
    if not unchanged or after.imap != mailboxes:
        raise ConfigError(
            f"could not change {path} safely (unusual layout?): edit the [[imap]] tables by hand"
        )


def _replace(path: Path, text: str) -> None:
    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    scratch = _scratch_path(path)
    try:
        with scratch.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        scratch.chmod(mode)
        scratch.replace(path)
    except OSError as exc:
        scratch.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename lives in the folder: make it durable too
    finally:
        os.close(folder)


def _scratch_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")
