"""Stage 7b, triage: suggest a new ticket's priority, type and sector from its text.

Rules live in a TOML data file (``mailgate/rules/triage.toml`` by default) so admins can
extend them without code. Each suggestion records the keyword that caused it.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from mailgate.textmatch import first_keyword, fold
from mailgate.values import Triage

DEFAULT_RULES = Path(__file__).parent / "rules" / "triage.toml"
_KINDS = ("priority", "type", "sector")


@dataclass(frozen=True, slots=True)
class Rule:
    kind: str
    value: str
    keywords: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TriageRules:
    rules: tuple[Rule, ...]

    @classmethod
    def load(cls, path: Path = DEFAULT_RULES) -> TriageRules:
        with path.open("rb") as handle:
            document = tomllib.load(handle)
        rules = [
            Rule(kind, str(entry["value"]), tuple(str(k) for k in entry.get("keywords", ())))
            for kind in _KINDS
            for entry in document.get(kind, ())
        ]
        return cls(tuple(rules))


def triage(subject: str, text: str, rules: TriageRules) -> Triage:
    """The first matching rule of each kind; kinds without a match stay None."""
    folded = fold(f"{subject}\n{text}")
    found: dict[str, str] = {}
    reasons: list[str] = []
    for rule in rules.rules:
        if rule.kind in found:
            continue
        keyword = first_keyword(folded, rule.keywords)
        if keyword is not None:
            found[rule.kind] = rule.value
            reasons.append(f"{rule.kind} {rule.value}: '{keyword}'")
    return Triage(found.get("type"), found.get("sector"), found.get("priority"), tuple(reasons))
