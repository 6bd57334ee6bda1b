"""The model we ship (mailgate/language_model.npz) answers exactly as py3langid's own model
restricted to our languages at run time, as ``language`` did before the file existed."""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier, visit_counts

from mailgate import language_model
from mailgate.language import MODEL_LANGUAGES, MODEL_PATH, _identifier
from store.enums import LOCALES

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "language"
FOREIGN = [
    "Здравствуйте, у меня не работает оплата в магазине, помогите пожалуйста",  # noqa: RUF001
    "Guten Tag, die Zahlung in meinem Shop funktioniert nicht mehr, bitte helfen Sie mir",
    "Bonjour, le paiement ne fonctionne plus dans ma boutique, pouvez-vous m'aider ?",
    "Hola, el pago ya no funciona en mi tienda, ¿me pueden ayudar por favor?",
    "Buongiorno, il pagamento non funziona più nel mio negozio, potete aiutarmi?",
    "Dobrý den, platba v mém obchodě nefunguje, můžete mi prosím pomoci?",
    "Merhaba, mağazamda ödeme artık çalışmıyor, yardımcı olabilir misiniz?",  # noqa: RUF001
    "こんにちは、支払いができません。",
    "Ok",
    "",
    "12345 !!!",
]


@pytest.fixture(scope="module")
def runtime_trimmed() -> LanguageIdentifier:
    """What mailgate.language loaded before: py3langid's whole model, then our columns."""
    identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    identifier.set_languages(list(MODEL_LANGUAGES))
    return identifier


def texts() -> Iterator[str]:
    for code in LOCALES:
        for entry in (SAMPLES / f"{code}.txt").read_text("utf-8").split("\n---\n"):
            text = entry.strip()
            yield text
            yield "".join(
                c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
            )
            yield " ".join(text.split()[:3])
            yield text.upper()
    yield from FOREIGN


def test_the_shipped_model_ranks_as_py3langid_trimmed_at_run_time(
    runtime_trimmed: LanguageIdentifier,
) -> None:
    shipped = _identifier()
    checked = 0
    for text in texts():
        assert shipped.rank(text) == runtime_trimmed.rank(text), text
        assert shipped.classify(text) == runtime_trimmed.classify(text), text
        checked += 1
    assert checked > 800


def test_the_trie_visits_the_features_of_py3langids_table(
    runtime_trimmed: LanguageIdentifier,
) -> None:
    """Arbitrary bytes (any state, any byte), not only the words of real mails."""
    shipped = _identifier()
    rng = random.Random(7)
    alphabet = bytes(range(256))
    words = b"the comanda bestelling encomenda zamowienie \xc8\x9b\xc4\x85\xc3\xa3 ".split()
    for _ in range(300):
        noise = bytes(rng.choices(alphabet, k=rng.randrange(1, 400)))
        mixed = b" ".join(rng.choices(words, k=40)) + noise[:50]
        for data in (noise, mixed):
            expected = visit_counts(
                runtime_trimmed.tk_nextmove,
                runtime_trimmed._rowbase,
                runtime_trimmed.tk_output,
                data,
            )
            assert shipped.visits(data) == expected


def test_the_file_is_small_and_cut_for_our_languages() -> None:
    assert MODEL_PATH.stat().st_size < 4_000_000
    with pytest.raises(ValueError, match="cut for other languages"):
        language_model.load(MODEL_PATH, MODEL_LANGUAGES[:-1])
