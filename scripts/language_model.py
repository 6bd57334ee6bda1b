"""Write mailgate/language_model.npz: py3langid's model cut down to the languages we use.

    python scripts/language_model.py          # after a py3langid upgrade, or a change to
                                              # mailgate.language's language lists

py3langid's own model holds 142 columns (languages) and its byte automaton as a full
transition table (39 MB of uint32 in memory, whatever the languages); loading it and then
cutting it down to ours cost every gateway process ~115 MB at peak and 57 MB kept
(bench/README.md, Memory). The file written here holds:

- the naive-Bayes tables (``ptc``, ``pc``, ``classes``) with only our columns, in
  py3langid's order and dtypes, as its ``set_languages`` leaves them;
- the automaton as the trie it was built from: its edges (``goto_keys`` = state << 8 |
  byte, ``goto_values``), the failure link of every state (``fail``), the root's full
  row (``root``), and the feature counted in every state (``out``, -1 for none). A
  transition is the edge if there is one, else the failure state's transition; the
  script checks that this gives back py3langid's table for every state and byte before
  writing anything;
- ``languages``: the language list it was cut for (``mailgate.language`` refuses a file
  cut for another list).

``tests/stages/test_language_model.py`` checks that the file gives py3langid's own
answers.
"""

from __future__ import annotations

import sys
from collections import deque
from pathlib import Path

import numpy as np
from py3langid.langid import MODEL_DIR, MODEL_FILE
from py3langid.modelio import load_model

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailgate.language import MODEL_LANGUAGES, MODEL_PATH  # noqa: E402


def trimmed_model() -> dict[str, np.ndarray]:
    ptc, pc, classes, nextmove, rows, output = load_model(MODEL_DIR / MODEL_FILE)
    unknown = set(MODEL_LANGUAGES) - set(classes)
    if unknown:
        raise SystemExit(f"not in py3langid's model: {sorted(unknown)}")
    # As LanguageIdentifier.set_languages keeps them: every column of a kept label, in order.
    columns = [i for i, code in enumerate(classes) if code in set(MODEL_LANGUAGES)]
    table = np.asarray(nextmove, dtype=np.int32).reshape(-1, 256)[np.asarray(rows)]
    out = np.asarray(output, dtype=np.int32)
    goto_keys, goto_values, fail, root = trie_of(table)
    return {
        "ptc": np.asarray(ptc)[:, columns],
        "pc": np.asarray(pc)[columns],
        "classes": np.array([classes[i] for i in columns]),
        "goto_keys": goto_keys,
        "goto_values": goto_values,
        "fail": fail,
        "root": root,
        "out": out,
        "languages": np.array(MODEL_LANGUAGES),
    }


def trie_of(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The trie (edges, failure links) of an Aho-Corasick table, checked against it."""
    states = len(table)
    # A state's depth (the length of its n-gram) is its distance from the root: the
    # automaton is in state s only after reading s's n-gram.
    depth = np.full(states, -1, dtype=np.int64)
    depth[0] = 0
    queue = deque([0])
    while queue:
        state = queue.popleft()
        for target in np.unique(table[state]).tolist():
            if depth[target] < 0:
                depth[target] = depth[state] + 1
                queue.append(target)
    if (depth < 0).any():
        raise SystemExit("states unreachable from the root: not an Aho-Corasick table")
    source, byte = np.nonzero(depth[table] == depth[:, None] + 1)
    target = table[source, byte]
    if len(target) != states - 1 or len(np.unique(target)) != states - 1:
        raise SystemExit("the edges do not form a trie")
    fail = np.zeros(states, dtype=np.int64)
    rebuilt = np.zeros_like(table)
    rebuilt[0] = table[0]
    for level in range(1, int(depth.max()) + 1):
        into = depth[target] == level
        src, via, dst = source[into], byte[into], target[into]
        deeper = depth[src] > 0
        fail[dst[deeper]] = rebuilt[fail[src[deeper]], via[deeper]]
        level_states = np.nonzero(depth == level)[0]
        rebuilt[level_states] = rebuilt[fail[level_states]]
        # the edges out of this level's states override what their failure state does
        out_of = depth[source] == level
        rebuilt[source[out_of], byte[out_of]] = target[out_of]
    if not np.array_equal(rebuilt, table):
        raise SystemExit("edges + failure links do not give back the table")
    inner = depth[source] > 0  # the root's edges are in its row
    keys = (source[inner] << 8) | byte[inner]
    order = np.argsort(keys)
    return (
        keys[order].astype(np.uint32),
        target[inner][order].astype(np.uint32),
        fail.astype(np.uint32),
        table[0].astype(np.uint32),
    )


def main() -> None:
    arrays = trimmed_model()
    np.savez_compressed(MODEL_PATH, **arrays)
    print(
        f"wrote {MODEL_PATH} ({MODEL_PATH.stat().st_size / 1e6:.1f} MB):"
        f" {len(arrays['classes'])} columns, {len(arrays['fail'])} states,"
        f" {len(arrays['goto_keys'])} inner edges"
    )


if __name__ == "__main__":
    main()
