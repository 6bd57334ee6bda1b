"""Fill a store directly with N tickets, for the query benchmarks (``bench/queries.py``).

    python -m bench.fill_store --url sqlite:////tmp/q1m.db --tickets 1000000
    python -m bench.fill_store --url postgresql+psycopg://postgres@127.0.0.1/q1m --tickets 1000000

(from the repository root, so that this checkout's ``store`` is the one imported).

Bulk inserts into the tables (no pipeline, no mail files): shops and their users,
tickets, requesters as participants, and 1 to 6 messages per ticket with text in the
ticket's language; COPY on PostgreSQL, executemany on SQLite. Row by row, the search
triggers would cost more than the load itself, so the search objects are set aside
first (alembic downgrade to 0001) and put back afterwards (upgrade to head): migration
0002 then builds every ticket's search document in one statement, exactly as it does
for a store upgraded in place, and revision 0003 stores the wall-clock durations and first
responders of ``stats`` in SQL, after which the business-time durations are computed with
the default calendar as ``mailgate db upgrade`` does (``store.durations``); revision 0004
counts the tickets (per status, sector, priority and assignee) and the replies (per day
and author) into ``ticket_counts`` and ``reply_counts``; revision 0005 the per-day totals
and duration ranges of ``stats``, whose SLA verdicts are then counted by the default
targets (``store.day_totals.sync_limits``, as ``mailgate db upgrade`` does). Solved and
closed tickets get the status history ``stats`` reads (6 % solved, reopened, solved again).
The mix is the one of a platform that has run for three years: most
tickets closed, a backlog of about 12 % (new, open, pending, on hold, solved), priorities
mostly normal, five sectors, five languages. Deterministic for a given ``--seed``.
Appends to whatever the store holds already (ticket ids continue).
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from mailgate.config import SlaSettings, WorkflowSettings
from mailgate.policy import sla_policy
from store.day_totals import sync_limits
from store.db import Database
from store.durations import backfill_business_seconds
from store.models import AuditEvent, Message, Participant, Shop, ShopUser, Ticket

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SPAN = timedelta(days=3 * 365)
LANGUAGES = {"ro": 0.35, "pl": 0.2, "nl": 0.15, "pt": 0.15, "en": 0.15}
STATUSES = {
    "closed": 0.80,
    "solved": 0.08,
    "open": 0.05,
    "pending": 0.03,
    "on_hold": 0.015,
    "new": 0.025,
}
PRIORITIES = {"immediate": 0.03, "high": 0.15, "normal": 0.62, "low": 0.20}
RANK = {"immediate": 0, "high": 1, "normal": 2, "low": 3}
SECTORS = {"support": 0.4, "payments": 0.2, "shipping": 0.2, "marketing": 0.1, "finance": 0.1}
TYPES = {"question": 0.55, "problem": 0.4, "development": 0.05}
REASONS = ["applying_fix", "awaiting_merchant_data", "awaiting_it", "long_analysis"]
AGENTS = [f"agent{i}@support.example" for i in range(40)]
COURIERS = ["DPD", "FAN Courier", "PostNL", "CTT", "InPost", "Royal Mail", "Sameday", "GLS"]

# Per language: subjects, then sentences; {order} {product} {courier} {amount} filled in.
TEXT: dict[str, tuple[list[str], list[str]]] = {
    "ro": (
        [
            "Plata cu cardul nu funcționează",
            "Comanda {order} nu a ajuns",
            "Factura pentru comanda {order}",
            "Import produse eșuat: {product}",
            "Curierul {courier} nu preia coletele",
            "Eroare la checkout",
            "Cerere modificare temă",
        ],
        [
            "Bună ziua, clienții nu pot plăti comanda {order} cu cardul.",
            "Produsul {product} nu apare în magazin după import.",
            "Curierul {courier} spune că adresa este greșită.",
            "Am primit o factură de {amount} lei pe care nu o înțeleg.",
            "Vă rog să verificați de ce plățile sunt refuzate de bancă.",
            "Comanda a fost plătită, dar statusul a rămas neplătit.",
            "Putem schimba culoarea butonului de coș pe pagina produsului {product}?",
            "Mulțumesc pentru răspuns, revin cu detalii mâine.",
            "Clientul așteaptă coletul de o săptămână.",
            "Exportul comenzilor în CSV dă eroare la descărcare.",
        ],
    ),
    "pl": (
        [
            "Płatność kartą nie działa",
            "Zamówienie {order} nie dotarło",
            "Faktura do zamówienia {order}",
            "Błąd importu produktów: {product}",
            "Kurier {courier} nie odbiera paczek",
            "Błąd w koszyku",
        ],
        [
            "Dzień dobry, klienci nie mogą zapłacić za zamówienie {order}.",
            "Produkt {product} nie pojawia się w sklepie po imporcie.",
            "Kurier {courier} twierdzi, że adres jest błędny.",
            "Otrzymaliśmy fakturę na {amount} zł, której nie rozumiemy.",
            "Proszę sprawdzić, dlaczego płatności są odrzucane przez bank.",
            "Zamówienie zostało opłacone, ale status pozostał nieopłacony.",
            "Dziękuję za odpowiedź, jutro prześlę szczegóły.",
            "Klient czeka na paczkę od tygodnia.",
        ],
    ),
    "nl": (
        [
            "Betaling met kaart werkt niet",
            "Bestelling {order} niet aangekomen",
            "Factuur voor bestelling {order}",
            "Productimport mislukt: {product}",
            "Koerier {courier} haalt pakketten niet op",
        ],
        [
            "Goedemorgen, klanten kunnen bestelling {order} niet betalen.",
            "Het product {product} verschijnt niet in de winkel na de import.",
            "De koerier {courier} zegt dat het adres onjuist is.",
            "We hebben een factuur van {amount} euro ontvangen die we niet begrijpen.",
            "Kunt u nagaan waarom de betalingen door de bank worden geweigerd?",
            "Bedankt voor uw antwoord, ik stuur morgen de details.",
            "De klant wacht al een week op het pakket.",
        ],
    ),
    "pt": (
        [
            "Pagamento com cartão não funciona",
            "Encomenda {order} não chegou",
            "Fatura da encomenda {order}",
            "Falha na importação de produtos: {product}",
            "A transportadora {courier} não recolhe as encomendas",
        ],
        [
            "Bom dia, os clientes não conseguem pagar a encomenda {order}.",
            "O produto {product} não aparece na loja depois da importação.",
            "A transportadora {courier} diz que a morada está errada.",
            "Recebemos uma fatura de {amount} euros que não percebemos.",
            "Podem verificar porque é que os pagamentos são recusados pelo banco?",
            "Obrigado pela resposta, amanhã envio os detalhes.",
            "O cliente espera pela encomenda há uma semana.",
        ],
    ),
    "en": (
        [
            "Card payments are failing",
            "Order {order} never arrived",
            "Invoice for order {order}",
            "Product import failed: {product}",
            "{courier} does not collect our parcels",
            "Checkout error",
        ],
        [
            "Hello, customers cannot pay for order {order} by card.",
            "The product {product} does not show in the shop after the import.",
            "The courier {courier} says the address is wrong.",
            "We received an invoice of {amount} pounds that we do not understand.",
            "Could you check why payments are declined by the bank?",
            "Thanks for the answer, I will send the details tomorrow.",
            "The customer has been waiting for the parcel for a week.",
        ],
    ),
}
AGENT_TEXT = {
    "ro": "Bună ziua, am verificat și revenim cu o soluție. Vă rugăm să ne trimiteți detalii.",
    "pl": "Dzień dobry, sprawdziliśmy i wrócimy z rozwiązaniem. Prosimy o szczegóły.",
    "nl": "Goedendag, we hebben het nagekeken en komen terug met een oplossing.",
    "pt": "Bom dia, verificámos e voltamos com uma solução. Enviem-nos os detalhes.",
    "en": "Hello, we checked and will come back with a fix. Please send us the details.",
}


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def products(rng: random.Random, count: int = 500) -> list[str]:
    """Made-up product names: each one is in about 1 of ``count`` tickets (search bench)."""
    syllables = ["ka", "lo", "mi", "zen", "tor", "va", "rus", "pel", "dor", "xi", "qua", "nem"]
    names = set()
    while len(names) < count:
        names.add("".join(rng.choices(syllables, k=3)).capitalize())
    return sorted(names)


class Filler:
    def __init__(self, db: Database, seed: int) -> None:
        self.db = db
        self.rng = random.Random(seed)
        self.products = products(random.Random(seed))
        self.users: list[tuple[int, str, str, str]] = []  # shop id, email, name, locale

    def shops(self, count: int) -> None:
        rng = self.rng
        with self.db.write() as s:
            first = (s.execute(sa.select(sa.func.max(Shop.id))).scalar() or 0) + 1
            shops, users = [], []
            for n in range(count):
                shop_id = first + n
                locale = _pick(rng, LANGUAGES)
                shops.append(
                    {"id": shop_id, "name": f"shop-{shop_id}", "locale": locale,
                     "hourly_rate": 40.0, "created_at": NOW - SPAN}
                )  # fmt: skip
                for u in range(rng.randint(1, 3)):
                    email = f"user{u}@shop-{shop_id}.example"
                    users.append(
                        {"email": email, "name": f"User {u}", "shop_id": shop_id,
                         "created_at": NOW - SPAN}
                    )  # fmt: skip
                    self.users.append((shop_id, email, f"User {u}", locale))
            s.execute(sa.insert(Shop), shops)
            s.execute(sa.insert(ShopUser), users)

    def tickets(self, count: int, batch: int, progress: bool) -> None:
        with self.db.read() as s:
            next_id = (s.execute(sa.select(sa.func.max(Ticket.id))).scalar() or 0) + 1
        started = time.monotonic()
        done = 0
        while done < count:
            size = min(batch, count - done)
            tickets: list[dict[str, Any]] = []
            messages: list[dict[str, Any]] = []
            participants: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            for n in range(size):
                self._one(next_id + done + n, tickets, messages, participants, events)
            raw = self.db.engine.raw_connection()
            try:
                if self.db.is_sqlite:  # the store's SQLite connections leave BEGIN to us
                    raw.cursor().execute("BEGIN IMMEDIATE")
                for table, rows in (
                    (Ticket.__table__, tickets),
                    (Participant.__table__, participants),
                    (Message.__table__, messages),
                    (AuditEvent.__table__, events),
                ):
                    if rows:
                        _bulk_insert(raw, table, rows)  # type: ignore[arg-type]
                raw.commit()
            finally:
                raw.close()
            done += size
            if progress:
                rate = done / (time.monotonic() - started)
                print(f"  {done:>9} tickets ({rate:,.0f}/s)", flush=True)
        if self.db.url.startswith("postgresql"):
            with self.db.write() as s:
                s.execute(sa.text("SELECT setval('tickets_id_seq', (SELECT max(id) FROM tickets))"))
                s.execute(
                    sa.text("SELECT setval('messages_id_seq', (SELECT max(id) FROM messages))")
                )
                s.execute(
                    sa.text(
                        "SELECT setval('participants_id_seq', (SELECT max(id) FROM participants))"
                    )
                )

    def _one(
        self,
        ticket_id: int,
        tickets: list[Any],
        messages: list[Any],
        parts: list[Any],
        events: list[Any],
    ) -> None:
        rng = self.rng
        stranger = rng.random() < 0.1
        if stranger:
            shop_id, language = None, _pick(rng, LANGUAGES)
            requester, name = f"someone{rng.randrange(10**6)}@gmail.example", "Someone"
        else:
            shop_id, requester, name, language = rng.choice(self.users)
        status = _pick(rng, STATUSES)
        priority = _pick(rng, PRIORITIES)
        created = NOW - SPAN * (rng.random() ** 0.7 if status == "closed" else rng.random() * 0.05)
        updated = min(NOW, created + timedelta(hours=rng.uniform(0.1, 200)))
        facts = {
            "order": str(rng.randrange(100000, 99999999)),
            "product": rng.choice(self.products),
            "courier": rng.choice(COURIERS),
            "amount": str(rng.randrange(10, 5000)),
        }
        subjects, sentences = TEXT[language]
        subject = rng.choice(subjects).format(**facts)
        open_work = status not in ("solved", "closed")
        tickets.append(
            {
                "id": ticket_id, "subject": subject, "status": status,
                "standby_reason": rng.choice(REASONS) if status == "on_hold" else None,
                "type": _pick(rng, TYPES), "sector": _pick(rng, SECTORS),
                "priority": priority, "priority_rank": RANK[priority],
                "requester": requester, "requester_name": name, "shop_id": shop_id,
                "verified": not stranger and rng.random() < 0.7, "verified_by": None,
                "confidential": rng.random() < 0.03,
                "assignee": rng.choice(AGENTS) if status != "new" else None,
                "language": language, "created_at": created, "updated_at": updated,
                "first_response_at": None if status == "new" else updated,
                "solved_at": updated if status in ("solved", "closed") else None,
                "closed_at": updated if status == "closed" else None,
                "due_at": (
                    created + timedelta(hours=rng.choice((4, 8, 16, 40))) if open_work else None
                ),
                "follow_up_of": None, "merged_into": None,
                # Workflow columns (store/sla.py): the clock runs while new or open
                # (24/7 for immediate), pauses while pending or on hold, stops once solved.
                "status_since": updated, "standby_reminded_at": None,
                "suggested_sector": None,
                "sla_clock": (
                    ("always" if priority == "immediate" else "business")
                    if status in ("new", "open") else "paused"
                ),
                "sla_since": updated if status in ("new", "open") else None,
                "sla_used_seconds": rng.uniform(0, 4 * 3600),
                "sla_first_response_seconds": (
                    None if status == "new" else rng.uniform(60, 8 * 3600)
                ),
                "sla_resolution_seconds": (
                    rng.uniform(600, 40 * 3600) if status in ("solved", "closed") else None
                ),
                "sla_warned": None, "budget_hours": None, "budget_rate": None,
                "budget_state": None, "deadline": None,
            }
        )  # fmt: skip
        parts.append({"ticket_id": ticket_id, "email": requester, "role": "requester"})
        if status in ("solved", "closed"):  # the status history stats reads (reopen rate)
            history = [("open", "solved", updated)]
            if rng.random() < 0.06:  # solved once before, and reopened by the merchant
                first = created + (updated - created) * rng.uniform(0.2, 0.6)
                again = first + (updated - first) * rng.uniform(0.1, 0.9)
                history = [("open", "solved", first), ("solved", "open", again), *history]
            for old, new, at in history:
                events.append(
                    {"ticket_id": ticket_id, "at": at, "actor": rng.choice(AGENTS),
                     "action": "status", "field_name": "status", "old": old, "new": new,
                     "detail": ""}
                )  # fmt: skip
        for n in range(rng.choices((1, 2, 3, 4, 6), weights=(30, 30, 20, 12, 8))[0]):
            inbound = n % 2 == 0
            if inbound:
                body = " ".join(s.format(**facts) for s in rng.sample(sentences, k=3))
            else:
                body = AGENT_TEXT[language]
            messages.append(
                {
                    "ticket_id": ticket_id, "direction": "in" if inbound else "out",
                    "raw_id": None, "message_id": f"{ticket_id}.{n}@bench.example",
                    "in_reply_to": None, "reference_ids": None,
                    "from_address": requester if inbound else rng.choice(AGENTS),
                    "from_name": name if inbound else "Agent",
                    "to_addresses": "support@example.com", "cc_addresses": "",
                    "subject": subject if n == 0 else f"Re: {subject}",
                    "date": created + timedelta(hours=n), "body_text": body, "reply_text": body,
                    "threaded_by": "new" if n == 0 else "reference", "thread_evidence": "",
                    "screen_verdict": "ok", "screen_reason": "", "auth": "{}",
                    "author": None if inbound else rng.choice(AGENTS), "flags": "",
                    "headers": "{}", "created_at": created + timedelta(hours=n),
                }
            )  # fmt: skip


def _bulk_insert(raw: Any, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` through the driver: COPY on PostgreSQL, executemany on SQLite.
    Times go in as naive UTC, as ``UTCDateTime`` stores them."""
    columns = [c.name for c in table.columns if c.name in rows[0]]
    values = [
        tuple(
            v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime) else v
            for v in (row[c] for c in columns)
        )
        for row in rows
    ]
    cursor = raw.cursor()
    if hasattr(cursor, "copy"):  # psycopg 3
        with cursor.copy(f"COPY {table.name} ({', '.join(columns)}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
    else:
        marks = ", ".join("?" for _ in columns)
        cursor.executemany(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({marks})", values
        )
    cursor.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="SQLAlchemy URL of the store to fill")
    parser.add_argument("--tickets", type=int, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch", type=int, default=5000, help="tickets per transaction")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    db = Database(args.url)
    db.upgrade()
    started = time.monotonic()
    _migrate(db, "0001")  # search objects aside: no trigger per row
    filler = Filler(db, args.seed)
    filler.shops(max(50, args.tickets // 200))
    filler.tickets(args.tickets, args.batch, progress=not args.quiet)
    loaded = time.monotonic()
    print(f"{args.tickets} tickets loaded in {loaded - started:.0f} s; indexing for search")
    _migrate(db, "head")
    indexed = time.monotonic()
    # Revision 0003 stored the wall-clock durations and first responders in SQL; the
    # business-time ones need the calendar, as `mailgate db upgrade` does (default settings).
    policy = sla_policy(WorkflowSettings(), SlaSettings())
    counted = backfill_business_seconds(db, policy.calendar, batch=5000)
    with db.write() as session:  # and stats' per-day SLA verdicts (revision 0005)
        sync_limits(session, policy)
    print(
        f"search documents and revision 0003 in {indexed - loaded:.0f} s; business times of"
        f" {counted} tickets in {time.monotonic() - indexed:.0f} s"
    )
    # What autovacuum would do on a live store: statistics, and (PostgreSQL) the
    # visibility map that lets counts use index-only scans.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE" if db.is_sqlite else "VACUUM ANALYZE"))
    print(f"{args.tickets} tickets in {time.monotonic() - started:.0f} s into {args.url}")
    db.dispose()


def _migrate(db: Database, revision: str) -> None:
    from alembic import command

    from store.migrate import alembic_config

    with db.engine.begin() as connection:
        if revision == "head":
            command.upgrade(alembic_config(connection), revision)
        else:
            command.downgrade(alembic_config(connection), revision)


if __name__ == "__main__":
    main()
