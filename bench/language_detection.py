"""Which language detector reads short merchant mails best? Run by hand:

    python bench/language_detection.py

Compares the detectors that are installed (py3langid, which Mailgate uses; and, when
present, lingua-language-detector and langdetect), each restricted to Mailgate's five
languages, on the sample mails in ``tests/data/language/`` after the same clean-up the
pipeline applies (``mailgate.language.detection_text``). Four variants of every text:
as written, without diacritics (as many merchants type), its first three words (a
subject line), and in capitals. Prints accuracy per language and variant, and the time
per text. A detector that is not installed is skipped.
"""

from __future__ import annotations

import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailgate.language import LOCALES, detect_language, detection_text  # noqa: E402

DATA = ROOT / "tests" / "data" / "language"
Detector = Callable[[str], str | None]


def load_samples() -> dict[str, list[str]]:
    return {
        lang: [t.strip() for t in (DATA / f"{lang}.txt").read_text("utf-8").split("\n---\n")]
        for lang in LOCALES
    }


def without_diacritics(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.replace("ł", "l").replace("Ł", "L"))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


VARIANTS: dict[str, Callable[[str], str]] = {
    "as written": lambda t: t,
    "no diacritics": without_diacritics,
    "first 3 words": lambda t: " ".join(t.split()[:3]),
    "capitals": str.upper,
}


def py3langid_detector() -> Detector:
    def detect(text: str) -> str | None:
        guess = detect_language(text)
        return guess[0] if guess else None

    return detect


def lingua_detector() -> Detector | None:
    try:
        from lingua import Language, LanguageDetectorBuilder
    except ImportError:
        return None
    codes = {
        Language.ENGLISH: "en",
        Language.ROMANIAN: "ro",
        Language.DUTCH: "nl",
        Language.PORTUGUESE: "pt",
        Language.POLISH: "pl",
    }
    detector = LanguageDetectorBuilder.from_languages(*codes).build()

    def detect(text: str) -> str | None:
        found = detector.detect_language_of(text)
        return codes.get(found) if found else None

    return detect


def langdetect_detector() -> Detector | None:
    try:
        import langdetect
        from langdetect import DetectorFactory
    except ImportError:
        return None
    DetectorFactory.seed = 0  # langdetect is random unless seeded

    def detect(text: str) -> str | None:
        try:
            guesses = langdetect.detect_langs(text)
        except langdetect.LangDetectException:
            return None
        return next((g.lang for g in guesses if g.lang in LOCALES), None)

    return detect


def main() -> None:
    samples = load_samples()
    detectors = {
        "py3langid": py3langid_detector(),
        "lingua": lingua_detector(),
        "langdetect": langdetect_detector(),
    }
    total = sum(len(texts) for texts in samples.values())
    print(f"{total} sample mails: " + ", ".join(f"{k} {len(v)}" for k, v in samples.items()))
    for name, detect in detectors.items():
        if detect is None:
            print(f"\n{name}: not installed, skipped")
            continue
        detect("warm up: load the model before timing")
        print(f"\n{name}")
        for variant, change in VARIANTS.items():
            started = time.perf_counter()
            right: dict[str, int] = {}
            undecided = 0
            for lang, texts in samples.items():
                for text in texts:
                    found = detect(detection_text("", change(text)))
                    right[lang] = right.get(lang, 0) + (found == lang)
                    undecided += found is None
            per_text = (time.perf_counter() - started) / total * 1000
            cells = " ".join(f"{lang} {right[lang] / len(samples[lang]):4.0%}" for lang in LOCALES)
            overall = sum(right.values()) / total
            print(
                f"  {variant:14} {cells}  all {overall:6.1%}"
                f"  (undecided {undecided}, {per_text:.2f} ms/text)"
            )


if __name__ == "__main__":
    main()
