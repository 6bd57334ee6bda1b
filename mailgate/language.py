"""Apply-stage helper: the language a new ticket's notifications are written in.

The order (issue 6): the shop's locale, else the mail's ``Content-Language``, else the
language detected from the merchant's own words, else English. The choice is stored on
the ticket (``Ticket.language``) and every later notification of the ticket uses it.

Detection is py3langid (a maintained fork of langid.py) restricted to our five
languages. It was the most accurate of the detectors measured on short merchant mails
(``bench/language_detection.py``; figures in bench/README.md), and it is small and fast. A
guess it is not sure of counts as no guess, so a one-word "Thanks!" gets English rather
than a coin toss. A mail in a language we do not write (Russian, German, French…) is no
guess either: restricted to our five, the model would pick the nearest of them and answer
a German merchant in Dutch, so the text is first checked against the other languages in
the Latin script (and against the script itself, which all five of ours use); English is
the platform's common language.

The model is py3langid's, shipped already cut down to the languages below
(``language_model.npz``, see ``mailgate/language_model.py``): loading py3langid's whole
model and cutting it at run time cost every gateway process ~115 MB at its peak.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from store.enums import LOCALES

if TYPE_CHECKING:
    from mailgate.language_model import TrieIdentifier

DEFAULT_LANGUAGE = "en"
MIN_CONFIDENCE = 0.5  # measured: no wrong guess above it on the sample mails, even 3 words
# Measured on the sample mails: the most a text of ours scored for another language was
# 0.54 (three Dutch words read as Afrikaans); German, French, Italian, Spanish mails: > 0.97.
FOREIGN_CONFIDENCE = 0.9
# The languages in the Latin script a merchant of a European platform may write in besides
# ours (other scripts are told apart by their letters): the model keeps only these columns.
OTHER_LATIN_LANGUAGES = (
    "de", "fr", "es", "it", "ca", "gl", "eu", "hu", "cs", "sk", "sl", "hr", "bs", "sr",
    "sq", "tr", "sv", "da", "no", "nn", "fi", "et", "lv", "lt", "af", "fy", "lb", "mt",
    "ga", "cy", "is", "id", "ms", "vi", "la", "eo", "oc",
)  # fmt: skip
# The columns of py3langid's model we ship (language_model.npz, written by
# scripts/language_model.py, which must be run again when this list changes).
MODEL_LANGUAGES = (*LOCALES, *OTHER_LATIN_LANGUAGES)
MODEL_PATH = Path(__file__).with_name("language_model.npz")
MIN_LETTERS = 4  # fewer letters than this carry no language
MAX_DETECTION_CHARS = 2000  # the first lines say it; a long paste (a log) only costs time

Source = Literal["shop_locale", "content_language", "detected", "default"]

# Words that are not the merchant's language: links, addresses, and words with digits
# (order numbers, SKUs, prices, our ticket tags).
# An address is found from the start of its run of non-space: tried at every character
# of a long run without "@", ``\S+@`` took time in the square of its length.
_NOT_LANGUAGE = re.compile(r"https?://\S+|www\.\S+|(?<!\S)\S+@\S+|\[#\d+\]|\b\w*\d\w*\b")
# Acronyms (CSV, SKU, AWB, BLIK) tell nothing either, unless the whole mail is in capitals.
_ACRONYM = re.compile(r"\b[A-Z]{2,4}\b")
_REPLY_PREFIX = re.compile(r"^\s*((re|fw|fwd|aw|sv|odp|rv|enc|antw|wg|tr)\s*:\s*)+", re.I)
_LETTER = re.compile(r"[^\W\d_]")
_LATIN_LETTER = re.compile(r"[A-Za-z\u00c0-\u024f\u1e00-\u1eff]")


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


@dataclass(frozen=True, slots=True)
class Detected:
    """What detection found in a mail's own words (None: no guess). The pipeline detects
    before its transaction, so that the store's write lock is not held for it."""

    guess: tuple[str, float] | None


def detect_in_mail(subject: str, text: str) -> Detected:
    """Detection on a mail's subject and text (its reply part, or the whole text)."""
    return Detected(detect_language(detection_text(subject, text)))


def choose_language(
    *,
    shop_locale: str | None,
    content_language: str | None,
    subject: str,
    text: str,
    detected: Detected | None = None,
) -> LanguageChoice:
    """The language for a new ticket, by the order in the module docstring.

    ``detected``: the detection already run on ``subject`` and ``text``, if it was.
    """
    if (code := supported_language(shop_locale)) is not None:
        return LanguageChoice(code, "shop_locale")
    if (code := supported_language(content_language)) is not None:
        return LanguageChoice(code, "content_language")
    guess = (detected or detect_in_mail(subject, text)).guess
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
    subject = _REPLY_PREFIX.sub("", subject[:MAX_DETECTION_CHARS])
    words = _NOT_LANGUAGE.sub(" ", f"{subject}\n{text[:MAX_DETECTION_CHARS]}")
    letters = _LETTER.findall(words)
    if sum(c.isupper() for c in letters) * 2 < len(letters):
        words = _ACRONYM.sub(" ", words)
    # Lower case: the model counts byte n-grams, and a mail in capitals has few of its own.
    return " ".join(words.split()).lower()


def detect_language(text: str) -> tuple[str, float] | None:
    """The language of ``text`` and the detector's confidence, or None when unsure."""
    letters = len(_LETTER.findall(text))
    if letters < MIN_LETTERS or len(_LATIN_LETTER.findall(text)) * 2 < letters:
        return None  # too short, or mostly not in the Latin script all five of ours use
    scores = dict(_identifier().rank(text))
    best = max(scores, key=scores.__getitem__)
    if best not in LOCALES and scores[best] >= FOREIGN_CONFIDENCE:
        return None
    # Among ours only: the model's probabilities are a softmax, so renormalising our five
    # is exactly what a model restricted to them would say.
    ours = {code: scores.get(code, 0.0) for code in LOCALES}
    language = max(ours, key=ours.__getitem__)
    confidence = ours[language] / (sum(ours.values()) or 1.0)
    if confidence < MIN_CONFIDENCE:
        return None
    return language, confidence


_lock = threading.Lock()
_loaded: list[TrieIdentifier] = []


def load_language_model() -> None:
    """Load the detector now rather than with the first mail that needs it (``serve`` does,
    before it listens); once per process, and only read afterwards, so threads share it."""
    _identifier()


def _identifier() -> TrieIdentifier:
    # Imported and loaded on first use (0.2 s, 26 MB with numpy), so
    # CLI commands that never open a ticket do not pay for it. The file holds only our
    # columns of py3langid's model: its whole model is never loaded (see language_model).
    with _lock:
        if not _loaded:
            from mailgate import language_model

            _loaded.append(language_model.load(MODEL_PATH, MODEL_LANGUAGES))
        return _loaded[0]
