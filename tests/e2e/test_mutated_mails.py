"""Real mails with random damage (bytes changed, inserted, cut; control characters in
header lines), in batches through prepare and commit on both databases: every mail gets
an outcome, no batch fails, no stage fails on its own bug, and nothing stored holds a
NUL. Mutating the corpus this way found the NUL that made PostgreSQL refuse whole batches
(see test_control_characters.py)."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mailgate_testing import damaged, stored_text

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.values import Arrival, Envelope, Source

TESTS = Path(__file__).resolve().parents[1]
MAILS = sorted((TESTS.parent / "samples" / "eml").glob("*.eml")) + sorted(
    (TESTS / "data" / "parse").glob("*.eml")
)
ENVELOPES = (
    Envelope("ana@magazin.ro", ("support@localhost",)),
    Envelope("<>", ("support@localhost",)),
    Envelope("a\x00b@magazin.ro", ("support+1@localhost",)),
    Envelope(),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(MAILS),
            st.randoms(use_true_random=False),
            st.integers(0, 12),
            st.sampled_from(ENVELOPES),
        ),
        min_size=1,
        max_size=6,
    )
)
def test_damaged_mails_are_each_committed_and_stored_without_a_nul(
    gateway: Gateway,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
    batch: list[tuple[Path, random.Random, int, Envelope]],
) -> None:
    source = Source("import")
    raws = [damaged(path.read_bytes(), rng, times) for path, rng, times, _ in batch]
    arrivals = [
        Arrival(raw, envelope, source, clock())
        for raw, (_, _, _, envelope) in zip(raws, batch, strict=True)
        if raw.strip()
    ]
    caplog.clear()
    with caplog.at_level(logging.ERROR):
        prepared = [gateway.pipeline.prepare(arrival) for arrival in arrivals]
        outcomes = gateway.pipeline.commit(prepared)

    assert len(outcomes) == len(arrivals)
    assert not [record.getMessage() for record in caplog.records]  # no stage's bug, no refusal
    assert not [value for value in stored_text(gateway) if "\x00" in value]
