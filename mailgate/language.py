"""Apply-stage helper: the language a new ticket's notifications are written in.

The order (issue 6): the shop's locale, else the mail's ``Content-Language``, else the
language detected from the merchant's own words, else English. The choice is stored on
the ticket (``Ticket.language``) and every later notification of the ticket uses it.

Detection is py3langid (a maintained fork of langid.py) restricted to our five
languages. It was the most accurate of the detectors measured on short merchant mails
(``bench/language_detection.py``; figures in README.md), and it is small and fast. A
guess it is not sure of counts as no guess, so a one-word "Thanks!" gets English rather
than a coin toss.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from store.enums import LOCALES

if TYPE_CHECKING:
    from py3langid.langid import LanguageIdentifier

DEFAULT_LANGUAGE = "en"
MIN_CONFIDENCE = 0.5  # measured: no wrong guess above it on the sample mails, even 3 words
MIN_LETTERS = 4  # fewer letters than this carry no language
MAX_DETECTION_CHARS = 2000  # the first lines say it; a long paste (a log) only costs time

Source = Literal["shop_locale", "content_language", "detected", "default"]

# Words that are not the merchant's language: links, addresses, and words with digits
# (order numbers, SKUs, prices, our ticket tags).
_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|\[#\d+\]|\b\w*\d\w*\b")
# Acronyms (CSV, SKU, AWB, BLIK) tell nothing either, unless the whole mail is in capitals.
_ACRONYM = re.compile(r"\b[A-Z]{2,4}\b")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|odp|rv|enc|antw|wg|tr)\s*:\s*)+", re.I)
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True, slots=True)
class LanguageChoice:
    """A language code from ``LOCALES`` and the rule that chose it."""

    language: str
    source: Source
    confidence: float | None = None  # the detector's, for ``detected``

    def describe(self) -> str:
        """One line for the ticket's history: what was chosen, and why."""
        why = {
            "shop_locale": "the shop's locale",
            "content_language": "the mail's Content-Language",
            "detected": f"detected from the text (confidence {self.confidence or 0:.2f})",
            "default": "no shop locale, no Content-Language, text not conclusive",
        }[self.source]
        return f"{self.language}: {why}"


def choose_language(
    *, shop_locale: str | None, content_language: str | None, subject: str, text: str
) -> LanguageChoice:
    """The language for a new ticket, by the order in the module docstring."""
    if (code := supported_language(shop_locale)) is not None:
        return LanguageChoice(code, "shop_locale")
    if (code := supported_language(content_language)) is not None:
        return LanguageChoice(code, "content_language")
    guess = detect_language(detection_text(subject, text))
    if guess is not None:
        return LanguageChoice(guess[0], "detected", guess[1])
    return LanguageChoice(DEFAULT_LANGUAGE, "default")


def supported_language(tag: str | None) -> str | None:
    """The code of ours that a language tag names (``pt-BR`` → ``pt``), or None."""
    if not tag:
        return None
    primary = tag.strip().lower().replace("_", "-").split("-", 1)[0]
    return primary if primary in LOCALES else None


def detection_text(subject: str, text: str) -> str:
    """The merchant's words: subject (without Re:/Fwd:) and text, minus what is no language."""
    words = _NOT_LANGUAGE.sub(
        " ", f"{_REPLY_PREFIX.sub('', subject)}\n{text[:MAX_DETECTION_CHARS]}"
    )
    letters = _LETTER.findall(words)
    if sum(c.isupper() for c in letters) * 2 < len(letters):
        words = _ACRONYM.sub(" ", words)
    # Lower case: the model counts byte n-grams, and a mail in capitals has few of its own.
    return " ".join(words.split()).lower()


def detect_language(text: str) -> tuple[str, float] | None:
    """The language of ``text`` and the detector's confidence, or None when unsure."""
    if len(_LETTER.findall(text)) < MIN_LETTERS:
        return None
    language, confidence = _identifier().classify(text)
    if confidence < MIN_CONFIDENCE:
        return None
    return str(language), float(confidence)


_lock = threading.Lock()
_loaded: list[LanguageIdentifier] = []


def _identifier() -> LanguageIdentifier:
    # Imported and loaded on first use (about a second, with numpy), once per process, so
    # CLI commands that never open a ticket do not pay for it. After ``set_languages`` the
    # model is only read, so threads may share it.
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    with _lock:
        if not _loaded:
            identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
            identifier.set_languages(list(LOCALES))
            # set_languages keeps the model of all 97 languages to start again from: 27 MB
            # of every gateway process (bench/README.md, Memory) for a call never made again.
            identifier._full_model = (identifier.nb_ptc, identifier.nb_pc, identifier.nb_classes)
            _loaded.append(identifier)
        return _loaded[0]
