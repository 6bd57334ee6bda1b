"""Stage 7c, interpret a merchant's reply: does it mark the ticket solved, or answer a budget?

Either a first line ``#solved``, ``#approve`` or ``#reject`` (any language), or a reply
whose new part is only one of the phrases in ``mailgate/rules/merchant_replies.toml``
("rezolvat", "opgelost", "resolvido", "rozwiązane", "solved"; "aprob", "akkoord"…).
Anything longer is an ordinary reply: a sentence that merely contains "rezolvat" must not
close a ticket. Pure: reading never fails and never writes.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailgate.commands import MERCHANT_COMMANDS, extract_commands
from mailgate.textmatch import fold
from mailgate.values import Command

DEFAULT_PHRASES = Path(__file__).parent / "rules" / "merchant_replies.toml"
_NOT_WORD = re.compile(r"[^\w\s-]+")


def normalize(text: str) -> str:
    """Folded (case, accents), punctuation removed, spaces collapsed."""
    return " ".join(_NOT_WORD.sub(" ", fold(text)).split())


@dataclass(frozen=True, slots=True)
class MerchantPhrases:
    """Normalized phrase → command name (``solved``, ``approve``, ``reject``)."""

    meanings: dict[str, str]

    @classmethod
    def load(cls, path: Path = DEFAULT_PHRASES) -> MerchantPhrases:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        meanings: dict[str, str] = {}
        for name in sorted(MERCHANT_COMMANDS):
            for phrase in document.get(name, {}).get("phrases", ()):
                meanings[normalize(str(phrase))] = name
        return cls(meanings)


@cache
def default_phrases() -> MerchantPhrases:
    return MerchantPhrases.load()


def merchant_commands(reply_text: str, phrases: MerchantPhrases) -> tuple[Command, ...]:
    """The merchant's commands in the new part of a reply (``()`` for an ordinary reply)."""
    block = extract_commands(reply_text)
    found = tuple(c for c in block.commands if c.name in MERCHANT_COMMANDS)
    if found:
        return found
    meaning = phrases.meanings.get(normalize(reply_text))
    if meaning is None:
        return ()
    return (Command(meaning, (), reply_text.strip()[:200]),)
