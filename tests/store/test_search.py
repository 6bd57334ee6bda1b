"""``tickets list --search``: full-text search over subjects and message text, on both
databases, kept in sync by the store whatever writes the rows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import text

from store.db import Database
from store.enums import Direction
from store.errors import InvalidInput
from store.migrate import alembic_config
from store.models import Ticket
from store.tickets import NewMessage, NewTicket, add_message, open_ticket
from store.views import TicketFilter, list_tickets

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _ticket(db: Database, subject: str, *bodies: str, language: str = "en") -> int:
    with db.write() as s:
        ticket = open_ticket(
            s,
            NewTicket(subject=subject, requester="ana@shop.example", language=language),
            actor="ana@shop.example",
            now=NOW,
        )
        for body in bodies:
            add_message(s, ticket, NewMessage(Direction.IN, body), raw_id=None, now=NOW)
        assert ticket.id is not None
        return ticket.id


def _ticket_0001(db: Database, ticket_id: int, subject: str, body: str) -> int:
    """A ticket and its message written with the columns of revision 0001 only."""
    with db.engine.begin() as c:
        c.execute(
            sa.text(
                "INSERT INTO tickets (id, subject, status, type, sector, priority, priority_rank,"
                " requester, requester_name, verified, confidential, language, created_at,"
                " updated_at, sla_clock, sla_used_seconds) VALUES (:id, :subject, 'new',"
                " 'question', 'support', 'normal', 2, 'ana@shop.example', '', false, false,"
                " 'en', :now, :now, 'paused', 0)"
            ),
            {"id": ticket_id, "subject": subject, "now": NOW.replace(tzinfo=None)},
        )
        c.execute(
            sa.text(
                "INSERT INTO messages (ticket_id, direction, from_name, to_addresses,"
                " cc_addresses, subject, body_text, reply_text, threaded_by, thread_evidence,"
                " screen_verdict, screen_reason, auth, flags, headers, created_at)"
                " VALUES (:id, 'in', '', '', '', :subject, :body, :body, 'new', '', 'ok', '',"
                " '{}', '', '{}', :now)"
            ),
            {"id": ticket_id, "subject": subject, "body": body, "now": NOW.replace(tzinfo=None)},
        )
    return ticket_id


def _found(db: Database, search: str, **filters: object) -> list[int]:
    with db.read() as s:
        return sorted(t.id for t in list_tickets(s, TicketFilter(search=search, **filters)))  # type: ignore[arg-type]


def test_search_ignores_case_and_accents(db: Database) -> None:
    payment = _ticket(db, "Plată eșuată la checkout", "Clienții nu pot plăti cu cardul.")
    _ticket(db, "Import produse", "Fișierul CSV nu se încarcă.")
    assert _found(db, "plata esuata") == [payment]
    assert _found(db, "PLATĂ") == [payment]
    assert _found(db, "CLIENTII cardul") == [payment]
    assert _found(db, "fisierul") != [payment]


def test_search_folds_letters_without_a_decomposition(db: Database) -> None:
    """Polish ł has no Unicode decomposition: it still matches a plain l."""
    polish = _ticket(db, "Błąd płatności", "Płatność kartą nie działa w Łodzi.", language="pl")
    assert _found(db, "blad") == [polish]
    assert _found(db, "platnosc lodzi") == [polish]
    assert _found(db, "Płatność") == [polish]


def test_romanian_cedilla_and_comma_below_letters_find_each_other(db: Database) -> None:
    """Romanian s/t are written with a comma below (ș ț, U+0219 U+021B) or, by older
    keyboards and fonts, with a cedilla (ş ţ, U+015F U+0163): a merchant and an agent may
    use either, or leave the accents out; each form finds the others."""
    comma = _ticket(db, "Plata nu funcționează", "Clientul așteaptă coletul.", language="ro")
    cedilla = _ticket(db, "Eroare la funcţionare", "Comanda aşteaptă în ŞABLON.", language="ro")
    for word in ("funcționează", "funcţionează", "functioneaza", "FUNCŢIONEAZĂ", "FUNCȚIONEAZĂ"):
        assert comma in _found(db, word, statuses=("all",)), word
    for word in ("funcţionare", "funcționare", "functionare"):
        assert _found(db, word, statuses=("all",)) == [cedilla], word
    for word in ("așteaptă", "aşteaptă", "asteapta", "AŞTEAPTĂ", "AȘTEAPTĂ"):
        assert _found(db, word, statuses=("all",)) == [comma, cedilla], word
    for word in ("șablon", "şablon", "sablon"):
        assert _found(db, word, statuses=("all",)) == [cedilla], word


def test_every_word_must_occur_somewhere_in_the_ticket(db: Database) -> None:
    both = _ticket(db, "Plata nu merge", "Cardul Visa este refuzat.")
    _ticket(db, "Cardul meu", "Altceva.")
    assert _found(db, "plata visa") == [both]  # one word in the subject, one in a message
    assert _found(db, "plata bitcoin") == []


def test_new_messages_and_changed_subjects_are_searchable_at_once(db: Database) -> None:
    ticket_id = _ticket(db, "Întrebare nouă", "Prima scrisoare.")
    assert _found(db, "factura") == []
    with db.write() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        add_message(
            s, ticket, NewMessage(Direction.NOTE, "Trimis factura corectată."), raw_id=None, now=NOW
        )
        ticket.subject = "Factură greșită"
        s.add(ticket)
    assert _found(db, "factura corectata") == [ticket_id]
    assert _found(db, "gresita") == [ticket_id]
    assert _found(db, "prima scrisoare") == [ticket_id]  # older messages stay searchable
    assert _found(db, "noua") == []  # the old subject does not


def test_a_moved_message_is_found_in_its_new_ticket(db: Database) -> None:
    """Merging moves messages; the search follows them (triggers on messages.ticket_id)."""
    source = _ticket(db, "Sursa", "Curierul a pierdut coletul.")
    target = _ticket(db, "Destinația", "Alt mesaj.")
    assert _found(db, "coletul") == [source]
    with db.write() as s:
        s.execute(
            text("UPDATE messages SET ticket_id = :target WHERE ticket_id = :source"),
            {"target": target, "source": source},
        )
    assert _found(db, "coletul") == [target]


def test_search_combines_with_the_other_filters(db: Database) -> None:
    shipping = _ticket(db, "Colet întârziat", "Comanda 1234 nu a ajuns.")
    _ticket(db, "Colet pierdut", "Comanda 5678.")
    with db.write() as s:
        s.execute(text("UPDATE tickets SET sector = 'shipping' WHERE id = :id"), {"id": shipping})
    assert _found(db, "colet", sector="shipping") == [shipping]
    assert _found(db, "1234") == [shipping]


def test_search_text_is_words_not_query_syntax(db: Database) -> None:
    ticket_id = _ticket(db, 'Eroare "NEAR" la export', "Exportul dă eroare 42: OR AND *")
    assert _found(db, 'NEAR( "export" OR -') == [ticket_id]  # no syntax: "or" is a word
    assert _found(db, 'NEAR( "export" OR - bitcoin') == []
    assert _found(db, '"eroare" -42') == [ticket_id]
    with pytest.raises(InvalidInput, match="nothing to search"):
        _found(db, " ?! ")
    with pytest.raises(InvalidInput, match="nothing to search"):
        _found(db, "%_")  # "_" is no word (it was one, and an empty query on PostgreSQL)


def test_a_word_no_language_keeps_finds_nothing(db: Database) -> None:
    """A character that is a word to Python but none to any configuration (²):
    no ticket, where PostgreSQL was handed an empty query and refused it."""
    _ticket(db, "Plata nu merge", "Clienții nu pot plăti.")
    assert _found(db, "²") == []


def test_search_finds_the_other_forms_of_a_word(store_url: str, db: Database) -> None:
    """Stemming: in every language on PostgreSQL, English only on SQLite (Porter)."""
    english = _ticket(db, "Payments failing", "Two payments were refused.", language="en")
    assert _found(db, "payment refuse") == [english]
    if not store_url.startswith("postgresql"):
        return
    romanian = _ticket(db, "Problemă", "Plățile clienților sunt refuzate.", language="ro")
    dutch = _ticket(db, "Probleem", "De betalingen van klanten mislukken.", language="nl")
    portuguese = _ticket(db, "Problema", "Os pagamentos dos clientes falham.", language="pt")
    assert _found(db, "plata clientului") == [romanian]
    assert _found(db, "betaling klant") == [dutch]
    assert _found(db, "pagamento cliente") == [portuguese]


@pytest.mark.postgres
def test_a_new_tickets_document_is_the_one_a_rebuild_gives(fresh_pg_database: str) -> None:
    """Revision 0007 writes a new ticket's document from its subject alone (it has no
    messages yet); it must equal what ``mailgate_search_document`` builds from the rows,
    with and without messages, in every language."""
    db = Database(fresh_pg_database)
    try:
        db.upgrade()
        _ticket(db, "Plată eșuată la checkout", language="ro")
        _ticket(db, "Betaling mislukt", "De klant kan niet betalen.", language="nl")
        _ticket(db, "", "Sem assunto.", language="pt")
        _ticket(db, "Zamówienie", "Płatność odrzucona.", "Proszę o pomoc.", language="pl")
        _ticket(db, "Unknown language", language="xx")
        with db.read() as s:
            rows = s.execute(
                text(
                    "SELECT ticket_id, document::text, mailgate_search_document(ticket_id)::text"
                    " FROM ticket_search ORDER BY ticket_id"
                )
            ).all()
        assert len(rows) == 5
        assert all(kept == rebuilt for _, kept, rebuilt in rows), rows
        assert "plat" in rows[0][1]  # the Romanian subject, unaccented and stemmed
    finally:
        db.dispose()


def test_tickets_of_a_store_upgraded_in_place_are_searchable(store_url: str) -> None:
    """Migration 0002 builds the documents of the tickets that exist already."""
    engine = sa.create_engine(store_url)
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), "base")
        command.upgrade(alembic_config(connection), "0001")
    engine.dispose()
    db = Database(store_url)
    try:
        # Rows as revision 0001 holds them (today's models have columns it has not).
        payment = _ticket_0001(db, 1, "Plată eșuată", "Cardul este refuzat.")
        shipping = _ticket_0001(db, 2, "Colet pierdut", "Curierul nu a venit.")
        db.upgrade()
        assert _found(db, "plata cardul") == [payment]
        assert _found(db, "curierul colet") == [shipping]
    finally:
        db.dispose()
