"""Stage 7c, interpret confidentiality: does the mail ask for something only the shop's
registered, authenticated address may ask for?

Password and access changes, payment-module and bank details, invoices and balances,
data exports, ownership changes (DESIGN.md) — in any of our five languages, by keyword
rules kept in a TOML data file (``mailgate/rules/confidential.toml``) that admins extend.
Matching forgives case and accents (``mailgate.textmatch``). Pure: what happens to a
confidential request from an unverified sender is decided in ``mailgate.holds``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from mailgate.errors import ConfigError
from mailgate.textmatch import first_keyword, fold

DEFAULT_RULES = Path(__file__).parent / "rules" / "confidential.toml"


@dataclass(frozen=True, slots=True)
class ConfidentialTopic:
    name: str
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ConfidentialRules:
    topics: tuple[ConfidentialTopic, ...]

    @classmethod
    def load(cls, path: Path | str | None = None) -> ConfidentialRules:
        """The rules in ``path`` (default: the built-in file); ``ConfigError`` if unreadable."""
        return _load(Path(path) if path else DEFAULT_RULES)


@lru_cache(maxsize=8)
def _load(path: Path) -> ConfidentialRules:
    try:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        topics = tuple(
            ConfidentialTopic(str(entry["name"]), tuple(str(k) for k in entry.get("keywords", ())))
            for entry in document.get("topic", ())
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"cannot read confidential rules {path}: {exc}") from exc
    return ConfidentialRules(topics)


def detect_confidential(subject: str, text: str, rules: ConfidentialRules) -> str | None:
    """Why the mail is a confidential request (``"access: 'password'"``), or None."""
    folded = fold(f"{subject}\n{text}")
    for topic in rules.topics:
        keyword = first_keyword(folded, topic.keywords)
        if keyword is not None:
            return f"{topic.name}: '{keyword}'"
    return None
