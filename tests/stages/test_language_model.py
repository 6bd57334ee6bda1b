"""The model we ship (mailgate/language_model.npz) answers exactly as py3langid's own model
restricted to our languages at run time, as ``language`` did before the file existed."""

from __future__ import annotations

import random
import threading
import tracemalloc
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier, visit_counts

from mailgate import language_model
from mailgate.language import MODEL_LANGUAGES, MODEL_PATH, _identifier, detection_text
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


@pytest.fixture
def fresh() -> language_model.TrieIdentifier:
    """A detector of its own (its cache is filled and shrunk here), not the shared one."""
    return language_model.load(MODEL_PATH, MODEL_LANGUAGES)


def walk_inputs(seed: int) -> list[bytes]:
    """Real sample texts (as written and as detection reads them) and random bytes."""
    rng = random.Random(seed)
    real = [text.encode() for text in texts()]
    real += [detection_text("", text).encode() for text in texts()]
    alphabet = bytes(range(256))
    letters = "abcdefghijklmnopqrstuvwxyz ăâîșțąćęłńóśźżãõçéêíúàôèëij".encode()
    noise = [bytes(rng.choices(alphabet, k=rng.randrange(0, 300))) for _ in range(200)]
    words = [bytes(rng.choices(letters, k=rng.randrange(1, 500))) for _ in range(200)]
    inputs = real + noise + words
    rng.shuffle(inputs)
    return inputs


def test_the_cached_walk_counts_as_the_uncached_one(fresh: language_model.TrieIdentifier) -> None:
    inputs = walk_inputs(11)
    expected = [fresh.visits_uncached(data) for data in inputs]
    assert sum(1 for found in expected if found) > 1000
    for _ in range(2):  # the cache empty, then full of these inputs' transitions
        assert [fresh.visits(data) for data in inputs] == expected


def test_the_cached_walk_is_right_when_slots_are_overwritten(
    fresh: language_model.TrieIdentifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cache of 61 slots: nearly every transition evicts another, and finds it evicted."""
    monkeypatch.setattr(language_model, "CACHE_SLOTS", 61)
    fresh.clear_cache()
    inputs = walk_inputs(12)
    expected = [fresh.visits_uncached(data) for data in inputs]
    for _ in range(2):
        assert [fresh.visits(data) for data in inputs] == expected
    assert len(fresh._cache) == 61


def test_threads_share_the_cache(
    fresh: language_model.TrieIdentifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Threads walking at once, over a cache small enough that they overwrite each other."""
    inputs = walk_inputs(13)
    expected = [fresh.visits_uncached(data) for data in inputs]
    for slots in (1009, language_model.CACHE_SLOTS):
        monkeypatch.setattr(language_model, "CACHE_SLOTS", slots)
        fresh.clear_cache()
        barrier = threading.Barrier(6)

        def walk(seed: int, barrier: threading.Barrier = barrier) -> list[int]:
            order = list(range(len(inputs)))
            random.Random(seed).shuffle(order)
            barrier.wait()
            return [i for i in order if fresh.visits(inputs[i]) != expected[i]]

        with ThreadPoolExecutor(6) as pool:
            wrong = list(pool.map(walk, range(6)))
        assert wrong == [[]] * 6


def test_the_cache_keeps_its_size(fresh: language_model.TrieIdentifier) -> None:
    """2 MB from the start, and walking a lot of new text adds nothing to it."""
    cache = fresh._cache
    assert len(cache) * cache.itemsize == language_model.CACHE_SLOTS * 8 < 2_200_000
    inputs = walk_inputs(14)
    fresh.visits(inputs[0])
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for data in inputs[:400]:
            fresh.visits(data)
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert fresh._cache is cache and len(cache) == language_model.CACHE_SLOTS
    assert kept < 10_000
