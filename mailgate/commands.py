"""Stage 7a, interpret commands: ``#name args`` lines at the top of a mail.

Agents steer a ticket from their mail client (``#status pending``, ``#priority high``,
``#sector payments``, ``#assign ana@…``, ``#type problem``, ``#time 30``, ``#note``).
Command lines are read only from the top of the new part of the mail, before the first
line of prose, and are removed from the text that is stored and relayed. Reading never
fails: an unknown or malformed command is reported back as an error string.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailgate.values import Command

AGENT_COMMANDS = frozenset(
    {"status", "priority", "type", "sector", "assign", "note", "time", "confirm-identity"}
)
MERCHANT_COMMANDS = frozenset({"solved", "approve", "reject"})
_COMMAND_LINE = re.compile(r"^\s*#(?P<name>[a-zA-Z][\w-]*)\b(?P<args>[^\n]*)$")
_TAG_LINE = re.compile(r"^\s*#\d+\s*$")  # "#39430" alone is a ticket number, not a command


@dataclass(frozen=True, slots=True)
class CommandBlock:
    commands: tuple[Command, ...]
    text: str  # the text without the command lines


def extract_commands(text: str) -> CommandBlock:
    """Split the leading ``#command`` lines (blank lines between them allowed) off ``text``."""
    lines = text.splitlines()
    commands: list[Command] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            index += 1
            continue
        match = _COMMAND_LINE.match(line)
        if match is None or _TAG_LINE.match(line):
            break
        args = tuple(match["args"].split())
        commands.append(Command(match["name"].lower(), args, line.strip()))
        index += 1
    if not commands:
        return CommandBlock((), text)
    return CommandBlock(tuple(commands), "\n".join(lines[index:]).strip("\n"))


def check_commands(commands: tuple[Command, ...], allowed: frozenset[str]) -> tuple[str, ...]:
    """Errors for commands outside ``allowed`` or missing their argument."""
    errors: list[str] = []
    for command in commands:
        if command.name not in allowed:
            errors.append(f"unknown command {command.line!r}")
        elif (
            command.name in {"status", "priority", "type", "sector", "assign", "time"}
            and not command.args
        ):
            errors.append(f"{command.line!r} needs a value")
        elif command.name == "time" and not command.args[0].isdigit():
            errors.append(f"{command.line!r}: the time is whole minutes, like '#time 15'")
    return tuple(errors)
