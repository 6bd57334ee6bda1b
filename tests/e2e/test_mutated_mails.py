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
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.values import Arrival, Envelope, Source

TESTS = Path(__file__).resolve().parents[1]
MAILS = sorted((TESTS.parent / "samples" / "eml").glob("*.eml")) + sorted(
    (TESTS / "data" / "parse").glob("*.eml")
)
INSERTS = (b"\x00", b"\n", b"\r\n", b"--", b"=?", b"?=", b"\xff", b";", b'"', b"<", b"[#1]")
HEADER_INSERTS = (b"\x00", b"\x00\x01", b"\x7f", b"\x1b")
ENVELOPES = (
    Envelope("ana@magazin.ro", ("support@localhost",)),
    Envelope("<>", ("support@localhost",)),
    Envelope("a\x00b@magazin.ro", ("support+1@localhost",)),
    Envelope(),
)


def _damaged(raw: bytes, rng: random.Random, times: int) -> bytes:
    mail = bytearray(raw)
    for _ in range(times):
        position = rng.randrange(len(mail) + 1)
        kind = rng.randrange(5)
        if kind == 0 and mail:
            mail[min(position, len(mail) - 1)] = rng.randrange(256)
        elif kind == 1:
            mail[position:position] = rng.choice(INSERTS)
        elif kind == 2:
            del mail[position : position + rng.randrange(1, 40)]
        elif kind == 3:
            del mail[position:]
        else:  # a control character somewhere in a header line
            end = mail.find(b"\n\n")
            starts = [0] + [i + 1 for i in range(end if end >= 0 else len(mail)) if mail[i] == 10]
            start = rng.choice(starts)
            stop = mail.find(b"\n", start)
            at = rng.randint(start, stop if stop >= 0 else len(mail))
            mail[at:at] = rng.choice(HEADER_INSERTS)
    return bytes(mail)


def _stored_text(gateway: Gateway) -> list[str]:
    queries = (
        "SELECT message_id, mail_from, rcpt_tos FROM raw_mails",
        "SELECT message_id, in_reply_to, reference_ids, from_address, to_addresses,"
        " subject, body_text, thread_evidence, screen_reason FROM messages",
        "SELECT filename, content_type, content_id FROM attachments",
        "SELECT requester, subject FROM tickets",
        "SELECT from_address, subject, detail FROM suspended_mails",
    )
    with gateway.db.engine.connect() as connection:
        rows = [row for query in queries for row in connection.execute(sa.text(query))]
    return [value for row in rows for value in row if isinstance(value, str)]


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
    raws = [_damaged(path.read_bytes(), rng, times) for path, rng, times, _ in batch]
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
    assert not [value for value in _stored_text(gateway) if "\x00" in value]
