"""Read-only questions the pipeline asks the store while deciding about one mail.

``StoreReader`` implements the narrow protocols the stages declare (mail history,
directory of agents and shop users, ticket lookup). It runs inside the committing
transaction, so a decision sees every mail committed before it, batch mates included.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    CompoundSelect,
    Select,
    Table,
    bindparam,
    exists,
    literal,
    true,
    union_all,
)
from sqlalchemy import select as sa_select
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from store.enums import RawOutcome
from store.loaded import as_loaded
from store.memo import is_remembered, remembered
from store.models import Agent, Message, OutboxMail, Participant, RawMail, Shop, ShopUser, Ticket
from store.reads import Read, column_names, fetch, fetch_together, in_list


@dataclass(frozen=True, slots=True)
class TicketRef:
    id: int
    status: str
    requester: str
    shop_id: int | None
    merged_into: int | None
    language: str
    subject: str


@dataclass(frozen=True, slots=True)
class AgentRef:
    id: int
    email: str
    name: str
    sectors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class EarlierDelivery:
    duplicate_of: int | None  # the raw mail that holds this exact delivery
    message_id_reused: bool  # an earlier, different mail carried the same Message-ID


@dataclass(frozen=True, slots=True)
class ShopUserRef:
    id: int
    email: str
    name: str
    shop_id: int
    shop_locale: str | None  # None: the shop has no fixed language


def active_agents(session: Session) -> dict[str, AgentRef]:
    """The active agents by address, in order of address (read once per transaction).

    Read as plain rows, not ``Agent`` objects: every batch reads them once, and the
    ORM's query cost about three times the plain statement's CPU, a fixed cost that
    weighs most on the small batches of few clients (bench/README.md)."""

    return remembered(session, _AGENTS_KEY, lambda: _agents(fetch(session, _ACTIVE_AGENTS, {})))


def _agents(rows: Iterable[Sequence[Any]]) -> dict[str, AgentRef]:
    return {
        email: AgentRef(agent_id, email, name, tuple(s for s in sectors.split(",") if s))
        for agent_id, email, name, sectors in rows
    }


_AGENTS_KEY = "active_agents"


_AGENTS: Table = Agent.__table__  # type: ignore[attr-defined]
_ACTIVE_AGENTS = (
    sa_select(_AGENTS.c.id, _AGENTS.c.email, _AGENTS.c.name, _AGENTS.c.sectors)
    .where(_AGENTS.c.active == true())
    .order_by(_AGENTS.c.email)
)


def _earlier_delivery_query() -> Select[tuple[int | None, bool]]:
    raw = RawMail.__table__.c  # type: ignore[attr-defined]
    same = sa_select(raw.id).where(raw.dedupe_key == bindparam("key")).scalar_subquery()
    reused = exists().where(
        raw.message_id == bindparam("message_id"),
        raw.outcome != RawOutcome.DUPLICATE.value,
    )
    return sa_select(same, reused)


# Built once: every mail asks it, and only the values change. A mail without a
# Message-ID compares with NULL, which matches nothing.
_EARLIER_DELIVERY = _earlier_delivery_query()

# Columns of the tables, not of the models, nor a ShopUser object: asked once or twice
# for every mail, nothing changes the user in the same transaction, and a plain select
# skips the ORM's compiling of the statement (about half of its cost).
_USERS = ShopUser.__table__.c  # type: ignore[attr-defined]
_SHOPS = Shop.__table__.c  # type: ignore[attr-defined]
_SHOP_USER = (
    sa_select(_USERS.id, _USERS.email, _USERS.name, _USERS.shop_id, _SHOPS.locale)
    .join_from(ShopUser.__table__, Shop.__table__, _SHOPS.id == _USERS.shop_id)  # type: ignore[attr-defined]
    .where(_USERS.email == bindparam("email"))
    .limit(1)
)


def _known_message_ids_query() -> CompoundSelect[tuple[str, int, int]]:
    """Which ticket holds each Message-ID, ours (the outbox) or a merchant's (messages):
    one statement, each half through its own index; ``source`` 0 (messages) comes first."""
    messages = Message.__table__.c  # type: ignore[attr-defined]
    outbox = OutboxMail.__table__.c  # type: ignore[attr-defined]
    return union_all(
        sa_select(messages.message_id, messages.ticket_id, literal(0).label("source")).where(
            in_list(messages.message_id, "ids")
        ),
        sa_select(outbox.message_id, outbox.ticket_id, literal(1).label("source")).where(
            in_list(outbox.message_id, "ids"), outbox.ticket_id.is_not(None)
        ),
    )


_KNOWN_MESSAGE_IDS = _known_message_ids_query()

# The same questions for a whole batch, one statement each (``StoreReader.look_ahead``),
# read with ``store.reads.fetch``: a list of values is one parameter (``in_list``).
_RAW = RawMail.__table__.c  # type: ignore[attr-defined]
_DELIVERIES_HELD = sa_select(_RAW.dedupe_key, _RAW.id).where(in_list(_RAW.dedupe_key, "keys"))
_MESSAGE_IDS_HELD = (
    sa_select(_RAW.message_id)
    .where(in_list(_RAW.message_id, "ids"), _RAW.outcome != RawOutcome.DUPLICATE.value)
    .distinct()
)
_SHOP_USERS = (
    sa_select(_USERS.id, _USERS.email, _USERS.name, _USERS.shop_id, _SHOPS.locale)
    .join_from(ShopUser.__table__, Shop.__table__, _SHOPS.id == _USERS.shop_id)  # type: ignore[attr-defined]
    .where(in_list(_USERS.email, "emails"))
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What the pipeline knows of a mail before asking the store about it."""

    dedupe_key: str
    message_id: str | None
    from_address: str | None
    references: tuple[str, ...] = ()  # the Message-IDs threading will look up
    ticket_ids: tuple[int, ...] = ()  # the tickets it names (subject tag, plus-address)


class StoreReader:
    def __init__(self, session: Session) -> None:
        self.session = session
        # The tickets looked at while threading, held for the reader's transaction: the
        # session keeps loaded objects only while something refers to them, and the apply
        # stage gets the same ticket again (``session.get``) without another SELECT.
        self._tickets: dict[int, Ticket] = {}
        # Answers found ahead for a batch (``look_ahead``): by dedupe key, with the
        # Message-ID they were asked for; shop users by address (None: not one).
        self._earlier: dict[str, tuple[str | None, EarlierDelivery]] = {}
        self._shop_users: dict[str, ShopUserRef | None] = {}
        # Message-IDs asked ahead, and the tickets of those found: a Message-ID not found
        # stays unknown in the batch unless a mail of the batch carries it (then it is
        # asked again, as it may have been stored meanwhile).
        self._references_asked: set[str] = set()
        self._references_found: dict[str, int] = {}

    def look_ahead(self, batch: Sequence[Delivery]) -> None:
        """Answer the duplicate checks and shop-user lookups of a batch about to be
        committed in a few statements for the whole batch, instead of one or two per
        mail; on PostgreSQL they go in one round trip, with the active agents (which
        every mail's identification asks for) unless the session remembers them.

        A mail of the batch can change the answer for a later one only through the raw
        mail it records (its dedupe key, its Message-ID): a mail that shares either with
        another of the batch is asked when its turn comes, as before. The directory is
        not written by the pipeline, so a shop user found now is found then.

        The Message-IDs the batch's mails refer to are looked up too, and the tickets
        they lead to or name are loaded into the session, two statements more for the
        batch instead of two for each reply.
        """
        keys = Counter(d.dedupe_key for d in batch)
        ids = Counter(d.message_id for d in batch if d.message_id)
        alone = [
            d
            for d in batch
            if keys[d.dedupe_key] == 1 and (not d.message_id or ids[d.message_id] == 1)
        ]
        asked = [d.message_id for d in alone if d.message_id]
        emails = sorted({d.from_address.lower() for d in batch if d.from_address})
        references = sorted({ref for d in batch for ref in d.references[-_MAX_REFERENCES:]})
        # One round trip to PostgreSQL for all of them (``fetch_together``).
        reads: list[Read] = []
        if alone:
            reads.append((_DELIVERIES_HELD, {"keys": [d.dedupe_key for d in alone]}))
        if asked:
            reads.append((_MESSAGE_IDS_HELD, {"ids": asked}))
        if emails:
            reads.append((_SHOP_USERS, {"emails": emails}))
        if references:
            reads.append((_KNOWN_MESSAGE_IDS, {"ids": references}))
        agents = not is_remembered(self.session, _AGENTS_KEY)  # every batch asks (identify)
        if agents:
            reads.append((_ACTIVE_AGENTS, {}))
        answers = iter(fetch_together(self.session, *reads))
        if alone:
            held = dict(next(answers))
            reused = {mid for (mid,) in next(answers)} if asked else set()
            self._delivered_before(alone, held, reused)
        if emails:
            self._shop_users_found(emails, next(answers))
        found: dict[str, int] = {}
        if references:
            found = _tickets_by_message_id(next(answers))
            self._references_found.update(found)
            carried = {d.message_id for d in batch if d.message_id}
            self._references_asked.update(i for i in references if i not in carried)
        if agents:
            rows = next(answers)
            remembered(self.session, _AGENTS_KEY, lambda: _agents(rows))
        named = {tid for d in batch for tid in d.ticket_ids} | set(found.values())
        if named:
            self._load_tickets(sorted(named))

    def _load_tickets(self, ids: Sequence[int]) -> None:
        for values in fetch(self.session, _TICKETS_BY_ID, {"ids": ids}):
            row = dict(zip(_TICKET_COLUMNS, values, strict=True))
            key = self.session.identity_key(Ticket, row["id"])
            if key not in self.session.identity_map:
                ticket = as_loaded(Ticket, row)
                make_transient_to_detached(ticket)
                self.session.add(ticket)
                self._tickets[row["id"]] = ticket  # held for the batch

    def _delivered_before(
        self, batch: Sequence[Delivery], held: Mapping[str, int], reused: set[str]
    ) -> None:
        for d in batch:
            mid = d.message_id or None
            found = EarlierDelivery(held.get(d.dedupe_key), mid is not None and mid in reused)
            self._earlier[d.dedupe_key] = (mid, found)

    def _shop_users_found(self, emails: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        found = {ref.email: ref for ref in (ShopUserRef(*row) for row in rows)}
        self._shop_users.update({email: found.get(email) for email in emails})

    # --- mail history -------------------------------------------------------------
    def duplicate_of(self, dedupe_key: str) -> int | None:
        """The raw-mail id that already holds this exact delivery, if any."""
        return self.session.exec(select(RawMail.id).where(RawMail.dedupe_key == dedupe_key)).first()

    def earlier_delivery(self, dedupe_key: str, message_id: str | None) -> EarlierDelivery:
        """What the store holds of this mail: the same delivery, or its Message-ID on
        another mail (one statement for both, each part through its own index)."""
        ahead = self._earlier.pop(dedupe_key, None)
        if ahead is not None and ahead[0] == (message_id or None):
            return ahead[1]
        ((raw_id, other),) = fetch(
            self.session, _EARLIER_DELIVERY, {"key": dedupe_key, "message_id": message_id or None}
        )
        return EarlierDelivery(raw_id, bool(other))

    # --- directory ----------------------------------------------------------------
    def agent(self, email: str) -> AgentRef | None:
        return active_agents(self.session).get(email.lower())

    def shop_user(self, email: str) -> ShopUserRef | None:
        email = email.lower()
        if email in self._shop_users:
            return self._shop_users[email]
        rows = fetch(self.session, _SHOP_USER, {"email": email})
        return ShopUserRef(*rows[0]) if rows else None

    # --- tickets ------------------------------------------------------------------
    def ticket(self, ticket_id: int) -> TicketRef | None:
        row = load_ticket(self.session, ticket_id)
        if row is None or row.id is None:
            return None
        self._tickets[row.id] = row
        return TicketRef(
            row.id,
            row.status,
            row.requester,
            row.shop_id,
            row.merged_into,
            row.language,
            row.subject,
        )

    def tickets_for_message_ids(self, message_ids: tuple[str, ...]) -> dict[str, int]:
        """Map each known Message-ID (ours or a merchant's) to the ticket that holds it."""
        if not message_ids:
            return {}
        # a References chain can be long
        ids = list(dict.fromkeys(message_ids))[-_MAX_REFERENCES:]
        if self._references_asked.issuperset(ids):
            known = self._references_found
            return {mid: known[mid] for mid in ids if mid in known}
        return _tickets_by_message_id(fetch(self.session, _KNOWN_MESSAGE_IDS, {"ids": ids}))

    def participant_role(self, ticket: TicketRef, email: str, shop_id: int | None) -> str | None:
        """Why ``email`` may write into ``ticket`` (requester, cc, same shop), or None."""
        email = email.lower()
        if email == ticket.requester:
            return "requester"
        if shop_id is not None and ticket.shop_id is not None and shop_id == ticket.shop_id:
            return "user of the same shop"
        return self.session.exec(
            select(Participant.role).where(
                Participant.ticket_id == ticket.id, Participant.email == email
            )
        ).first()


_MAX_REFERENCES = 50  # of a mail's Message-IDs, the newest looked up


def _tickets_by_message_id(rows: Iterable[Sequence[Any]]) -> dict[str, int]:
    """Each Message-ID's ticket: a merchant's message (source 0) before our outbox mail."""
    found: dict[str, int] = {}
    for mid, tid, _source in sorted(rows, key=lambda row: row[2]):
        if mid is not None:
            found.setdefault(mid, tid)
    return found


_TICKETS: Table = Ticket.__table__  # type: ignore[attr-defined]
_TICKET_BY_ID = sa_select(_TICKETS).where(_TICKETS.c.id == bindparam("id"))
_TICKETS_BY_ID = sa_select(_TICKETS).where(in_list(_TICKETS.c.id, "ids"))
_TICKET_COLUMNS = column_names(_TICKETS_BY_ID)


def load_ticket(session: Session, ticket_id: int) -> Ticket | None:
    """``session.get(Ticket, ticket_id)`` for a ticket the session does not hold yet, read
    with a plain select and made as the ORM makes a loaded one (``store.loaded``)."""
    held = session.identity_map.get(session.identity_key(Ticket, ticket_id))
    if held is not None:
        return session.get(Ticket, ticket_id)  # as the ORM answers for one it holds
    rows = fetch(session, _TICKET_BY_ID, {"id": ticket_id})
    if not rows:
        return None
    ticket = as_loaded(Ticket, dict(zip(_TICKET_COLUMNS, rows[0], strict=True)))
    make_transient_to_detached(ticket)
    session.add(ticket)
    return ticket
