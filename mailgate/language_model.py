"""py3langid's detector over the model we ship (``language_model.npz``), for ``language``.

The file is py3langid's model already cut down to our languages, its byte automaton kept
as a trie with failure links instead of a full transition table (how and why:
scripts/language_model.py). Loading it takes ~10 MB and never holds py3langid's whole
model (which cost ~115 MB at peak, 57 MB kept). Scoring is py3langid's own
(``LanguageIdentifier``): only the walk over the text's bytes is ours, and it visits the
same states as py3langid's table (tests/stages/test_language_model.py).

Imported only when the model is loaded: numpy and py3langid are not needed before.
"""

from __future__ import annotations

from array import array
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from py3langid.langid import RAW_FLOOR, LanguageIdentifier


class TrieIdentifier(LanguageIdentifier):  # type: ignore[misc]  # py3langid is untyped
    """``LanguageIdentifier`` walking a trie with failure links instead of a table."""

    __slots__ = ("_edge_bytes", "_edge_targets", "_edges_of", "_fail", "_root")

    # The trie's edges grouped by state: those of state s are at _edges_of[s] up to
    # _edges_of[s + 1] in _edge_bytes (the byte) and _edge_targets (where it leads). Two
    # arrays and a bytes hold what a dict of 100,000 edges took 11 MB for.
    _edges_of: array[int]
    _edge_bytes: bytes
    _edge_targets: array[int]
    _fail: array[int]
    _root: list[int]

    def _raw_score(self, text: bytes) -> Any:
        # py3langid 0.4.0's _raw_score, with ``visits`` in place of its visit_counts.
        visits = self.visits(text)
        if visits:
            return self._sparse_score(visits, self.nb_ptc)
        fill = 0.0 if self._norm_probs else RAW_FLOOR
        return np.full(len(self.nb_classes), fill, dtype=np.float32)

    def visits(self, text: bytes) -> Counter[int] | None:
        """How often each feature occurs in ``text`` (encoded bytes), None if none."""
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
    return identifier
