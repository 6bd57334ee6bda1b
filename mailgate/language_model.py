"""py3langid's detector over the model we ship (``language_model.npz``), for ``language``.

The file is py3langid's model already cut down to our languages, its byte automaton kept
as a trie with failure links instead of a full transition table (how and why:
scripts/language_model.py). Loading it takes ~10 MB and never holds py3langid's whole
model (which cost ~115 MB at peak, 57 MB kept). Scoring is py3langid's own
(``LanguageIdentifier``): only the walk over the text's bytes is ours, and it visits the
same states as py3langid's table (tests/stages/test_language_model.py). The walk keeps
the transitions it computed in a small fixed-size cache (``TrieIdentifier.visits``).

Imported only when the model is loaded: numpy and py3langid are not needed before.
"""

from __future__ import annotations

from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from py3langid.langid import RAW_FLOOR, LanguageIdentifier

# The walk's cache of transitions: a direct-mapped table of this many slots (a prime, so that
# state << 8 | byte spreads over it), each an unsigned 64-bit (state << 8 | byte) << bits |
# next state, 2 MB in all whatever the mail traffic. Measured (bench/README.md, The language
# walk's transition cache): as fast as a dict of transitions capped at 87,000 (7.7 MB).
CACHE_SLOTS = 262_139


class TrieIdentifier(LanguageIdentifier):  # type: ignore[misc]  # py3langid is untyped
    """``LanguageIdentifier`` walking a trie with failure links instead of a table."""

    __slots__ = (
        "_cache",
        "_edge_bytes",
        "_edge_targets",
        "_edges_of",
        "_fail",
        "_root",
        "_state_bits",
    )

    # The trie's edges grouped by state: those of state s are at _edges_of[s] up to
    # _edges_of[s + 1] in _edge_bytes (the byte) and _edge_targets (where it leads). Two
    # arrays and a bytes hold what a dict of 100,000 edges took 11 MB for.
    _edges_of: array[int]
    _edge_bytes: bytes
    _edge_targets: array[int]
    _fail: array[int]
    _root: list[int]
    # Transitions already walked: slot key % len(_cache) holds key << _state_bits | target,
    # key being state << 8 | byte (0: the slot's key is 0, state 0 and byte 0, whose target
    # is put there). A slot is written whole, in one store, so a thread reads either an old
    # transition or a new one, both right; a transition that is not there is walked again.
    _cache: array[int]
    _state_bits: int

    def _raw_score(self, text: bytes) -> Any:
        # py3langid 0.4.0's _raw_score, with ``visits`` in place of its visit_counts.
        visits = self.visits(text)
        if visits:
            return self._sparse_score(visits, self.nb_ptc)
        fill = 0.0 if self._norm_probs else RAW_FLOOR
        return np.full(len(self.nb_classes), fill, dtype=np.float32)

    def visits(self, text: bytes) -> Counter[int] | None:
        """How often each feature occurs in ``text`` (encoded bytes), None if none.

        As ``visits_uncached``, with the transitions looked up in ``_cache`` first: once a
        mail's words have been seen, a byte costs one lookup instead of the trie's search.
        """
        edges_of, edge_bytes, edge_targets = self._edges_of, self._edge_bytes, self._edge_targets
        fail, root, out = self._fail, self._root, self.tk_output
        cache, bits = self._cache, self._state_bits
        slots = len(cache)
        target_mask = (1 << bits) - 1
        state = 0
        found: list[int] = []
        append = found.append
        for byte in text:
            key = state << 8 | byte
            slot = key % slots
            entry = cache[slot]
            if entry >> bits == key:
                state = entry & target_mask
            else:
                while state:
                    edge = edge_bytes.find(byte, edges_of[state], edges_of[state + 1])
                    if edge >= 0:
                        state = edge_targets[edge]
                        break
                    state = fail[state]
                else:
                    state = root[byte]
                cache[slot] = key << bits | state
            feature = out[state]
            if feature >= 0:
                append(feature)
        return Counter(found) if found else None

    def visits_uncached(self, text: bytes) -> Counter[int] | None:
        """``visits`` searching the trie for every byte (the reference for tests, benches)."""
        edges_of, edge_bytes, edge_targets = self._edges_of, self._edge_bytes, self._edge_targets
        fail, root, out = self._fail, self._root, self.tk_output
        state = 0
        found: list[int] = []
        append = found.append
        for byte in text:
            while state:
                edge = edge_bytes.find(byte, edges_of[state], edges_of[state + 1])
                if edge >= 0:
                    state = edge_targets[edge]
                    break
                state = fail[state]
            else:
                state = root[byte]
            feature = out[state]
            if feature >= 0:
                append(feature)
        return Counter(found) if found else None

    def clear_cache(self) -> None:
        """Forget the walked transitions (benches: the first mails' cost)."""
        self._cache = new_cache(self._root)


def new_cache(root: list[int]) -> array[int]:
    """An empty transition cache: only slot 0's key (0) is in it, with its target."""
    cache = array("Q", bytes(8 * CACHE_SLOTS))
    cache[0] = root[0]
    return cache


def load(path: Path, languages: tuple[str, ...]) -> TrieIdentifier:
    """The detector in ``path``, which must have been cut for ``languages``."""
    with np.load(path, allow_pickle=False) as data:
        cut_for = tuple(data["languages"].tolist())
        if cut_for != languages:
            raise ValueError(
                f"{path.name} was cut for other languages than mailgate.language's:"
                " run scripts/language_model.py"
            )
        identifier = TrieIdentifier(
            data["ptc"],
            data["pc"],
            data["classes"].tolist(),
            array("I"),  # py3langid's table: not used
            array("i", data["out"].tobytes()),
            norm_probs=True,
            tk_row=[],
        )
        keys = data["goto_keys"]  # sorted: state << 8 | byte
        fail = data["fail"]
        edges_of = np.searchsorted(keys >> 8, np.arange(len(fail) + 1, dtype=keys.dtype))
        identifier._edges_of = array("I", edges_of.astype(np.uint32).tobytes())
        identifier._edge_bytes = (keys & 0xFF).astype(np.uint8).tobytes()
        identifier._edge_targets = array("I", data["goto_values"].tobytes())
        identifier._fail = array("I", fail.tobytes())
        identifier._root = data["root"].tolist()
        # A slot holds (state << 8 | byte) << bits | state in 64 bits.
        identifier._state_bits = (len(fail) - 1).bit_length()
        if 8 + 2 * identifier._state_bits > 64:
            raise ValueError(f"{path.name}: too many states for the walk's cache")
        identifier._cache = new_cache(identifier._root)
    return identifier
