"""full-text search of tickets, and the due-date queue index (hand-written: objects that
SQLModel cannot express or autogenerate cannot compare)

One search document per ticket: its subject and the text of every message, kept in sync
by triggers, so every writer (the pipeline, agent actions, bulk loads) keeps it current.
Queries live in ``store/search.py``.

``ix_tickets_backlog_due`` serves ``tickets list --sort due`` (due first, tickets without a
due time last): an index on the expression ``due_at IS NULL``, which alembic cannot
reflect from SQLite and so leaves out of the generated 0001.

- PostgreSQL: ``ticket_search.document`` (tsvector, GIN index), built with one text
  search configuration per ticket language: ``unaccent`` first ("plată" -> "plata"),
  then the language's snowball stemmer (english, romanian, dutch, portuguese; Polish has
  no stemmer in PostgreSQL, so it and unknown languages are only unaccented).
- SQLite: an FTS5 table, rowid = ticket id, tokenised with ``porter`` over
  ``unicode61 remove_diacritics 2``. unicode61 cannot fold letters that have no Unicode
  decomposition (Polish "ł" above all), so the triggers replace those first.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# PostgreSQL: ticket language -> (configuration name, stemming dictionary or None).
LANGUAGES = {
    "en": ("mailgate_en", "english", "english_stem"),
    "ro": ("mailgate_ro", "romanian", "romanian_stem"),
    "nl": ("mailgate_nl", "dutch", "dutch_stem"),
    "pt": ("mailgate_pt", "portuguese", "portuguese_stem"),
    "pl": ("mailgate_simple", "simple", "simple"),
}
# Text indexed per message and per ticket: enough for any real mail, and it keeps a
# tsvector under PostgreSQL's 1 MB limit however a pasted log file looks.
MESSAGE_CHARS = 100_000
TICKET_DOCUMENT_BYTES = 500_000

# SQLite: letters without a Unicode decomposition, which remove_diacritics cannot fold
# (the same list as mailgate.textmatch.fold; store.search folds queries with it too).
SQLITE_FOLDS = (
    ("ł", "l"), ("Ł", "L"), ("ø", "o"), ("Ø", "O"), ("ß", "ss"),
    ("đ", "d"), ("Đ", "D"), ("æ", "ae"), ("Æ", "AE"),
)  # fmt: skip


DUE_INDEX = (
    "CREATE INDEX IF NOT EXISTS ix_tickets_backlog_due"
    " ON tickets ((due_at IS NULL), due_at, priority_rank, id) WHERE status <> 'closed'"
)


def upgrade() -> None:
    op.execute(DUE_INDEX)
    if op.get_bind().dialect.name == "postgresql":
        _upgrade_postgresql()
    else:
        _upgrade_sqlite()


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_tickets_backlog_due")
    if op.get_bind().dialect.name == "postgresql":
        for trigger, table in (
            ("ticket_search_insert", "tickets"),
            ("ticket_search_update", "tickets"),
            ("message_search_insert", "messages"),
            ("message_search_update", "messages"),
            ("message_search_delete", "messages"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
        op.execute("DROP TABLE IF EXISTS ticket_search")
        for function in (
            "mailgate_search_ticket_changed()",
            "mailgate_search_message_changed()",
            "mailgate_search_document(integer)",
            "mailgate_search_config(text)",
        ):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        for config in sorted({c for c, _, _ in LANGUAGES.values()}):
            op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {config}")
        return
    for trigger in (
        "ticket_search_insert",
        "ticket_search_update",
        "ticket_search_delete",
        "message_search_insert",
        "message_search_update",
        "message_search_delete",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS ticket_search")


def _upgrade_postgresql() -> None:
    # unaccent is a trusted extension (PostgreSQL 13+): the database owner may create it.
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    for config, parent, stemmer in {v[0]: v for v in LANGUAGES.values()}.values():
        op.execute(f"CREATE TEXT SEARCH CONFIGURATION {config} (COPY = {parent})")
        op.execute(
            f"ALTER TEXT SEARCH CONFIGURATION {config}"
            f" ALTER MAPPING FOR hword, hword_part, word WITH unaccent, {stemmer}"
        )
    cases = " ".join(f"WHEN '{lang}' THEN '{c}'" for lang, (c, _, _) in LANGUAGES.items())
    op.execute(
        "CREATE FUNCTION mailgate_search_config(language text) RETURNS regconfig"
        " LANGUAGE sql STABLE AS"
        f" $$ SELECT (CASE language {cases} ELSE 'mailgate_simple' END)::regconfig $$"
    )
    op.execute(
        f"""
        CREATE FUNCTION mailgate_search_document(ticket integer) RETURNS tsvector
        LANGUAGE sql STABLE AS $$
            SELECT to_tsvector(mailgate_search_config(t.language), t.subject)
                || to_tsvector(
                    mailgate_search_config(t.language),
                    coalesce((
                        SELECT left(string_agg(left(m.body_text, {MESSAGE_CHARS}), ' '),
                                    {TICKET_DOCUMENT_BYTES // 2})
                        FROM messages m WHERE m.ticket_id = t.id
                    ), ''))
            FROM tickets t WHERE t.id = ticket
        $$
        """
    )
    op.execute(
        """
        CREATE TABLE ticket_search (
            ticket_id integer PRIMARY KEY REFERENCES tickets (id) ON DELETE CASCADE,
            document tsvector NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_ticket_search_document ON ticket_search USING gin (document)")
    # The planner estimates how many tickets a word matches from the most common lexemes;
    # a long list makes rare words look rare (and their plan fast) in a large store.
    op.execute("ALTER TABLE ticket_search ALTER COLUMN document SET STATISTICS 1000")
    op.execute(
        """
        CREATE FUNCTION mailgate_search_ticket_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                INSERT INTO ticket_search (ticket_id, document)
                VALUES (NEW.id, mailgate_search_document(NEW.id));
            ELSE
                UPDATE ticket_search SET document = mailgate_search_document(NEW.id)
                WHERE ticket_id = NEW.id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE FUNCTION mailgate_search_message_changed() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                -- The common case, kept cheap: append this message's words.
                UPDATE ticket_search s
                SET document = s.document || to_tsvector(
                    mailgate_search_config(t.language), left(NEW.body_text, {MESSAGE_CHARS}))
                FROM tickets t
                WHERE t.id = NEW.ticket_id AND s.ticket_id = NEW.ticket_id
                  AND pg_column_size(s.document) < {TICKET_DOCUMENT_BYTES};
                RETURN NULL;
            END IF;
            UPDATE ticket_search SET document = mailgate_search_document(OLD.ticket_id)
            WHERE ticket_id = OLD.ticket_id;
            IF TG_OP = 'UPDATE' AND NEW.ticket_id <> OLD.ticket_id THEN
                UPDATE ticket_search SET document = mailgate_search_document(NEW.ticket_id)
                WHERE ticket_id = NEW.ticket_id;
            END IF;
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        "CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets"
        " FOR EACH ROW EXECUTE FUNCTION mailgate_search_ticket_changed()"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_update AFTER UPDATE OF subject, language ON tickets"
        " FOR EACH ROW WHEN (OLD.subject IS DISTINCT FROM NEW.subject"
        " OR OLD.language IS DISTINCT FROM NEW.language)"
        " EXECUTE FUNCTION mailgate_search_ticket_changed()"
    )
    op.execute(
        "CREATE TRIGGER message_search_insert AFTER INSERT ON messages"
        " FOR EACH ROW EXECUTE FUNCTION mailgate_search_message_changed()"
    )
    op.execute(
        "CREATE TRIGGER message_search_update AFTER UPDATE OF ticket_id, body_text ON messages"
        " FOR EACH ROW WHEN (OLD.ticket_id IS DISTINCT FROM NEW.ticket_id"
        " OR OLD.body_text IS DISTINCT FROM NEW.body_text)"
        " EXECUTE FUNCTION mailgate_search_message_changed()"
    )
    op.execute(
        "CREATE TRIGGER message_search_delete AFTER DELETE ON messages"
        " FOR EACH ROW EXECUTE FUNCTION mailgate_search_message_changed()"
    )
    # Tickets that exist already (a store upgraded in place) get their documents now.
    op.execute(
        "INSERT INTO ticket_search (ticket_id, document)"
        " SELECT id, mailgate_search_document(id) FROM tickets"
    )


def _sqlite_fold(expression: str) -> str:
    for letter, plain in SQLITE_FOLDS:
        expression = f"replace({expression}, '{letter}', '{plain}')"
    return expression


def _sqlite_document(ticket: str) -> str:
    bodies = f"(SELECT group_concat(body_text, ' ') FROM messages WHERE ticket_id = {ticket})"
    return _sqlite_fold(
        f"(SELECT subject FROM tickets WHERE id = {ticket}) || ' ' || coalesce({bodies}, '')"
    )


def _upgrade_sqlite() -> None:
    op.execute(
        "CREATE VIRTUAL TABLE ticket_search USING fts5("
        "document, tokenize = 'porter unicode61 remove_diacritics 2')"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_insert AFTER INSERT ON tickets BEGIN"
        " INSERT INTO ticket_search (rowid, document)"
        f" VALUES (new.id, {_sqlite_fold('new.subject')}); END"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_update AFTER UPDATE OF subject ON tickets"
        " WHEN old.subject IS NOT new.subject BEGIN"
        f" UPDATE ticket_search SET document = {_sqlite_document('new.id')}"
        " WHERE rowid = new.id; END"
    )
    op.execute(
        "CREATE TRIGGER ticket_search_delete AFTER DELETE ON tickets BEGIN"
        " DELETE FROM ticket_search WHERE rowid = old.id; END"
    )
    op.execute(
        "CREATE TRIGGER message_search_insert AFTER INSERT ON messages BEGIN"
        " UPDATE ticket_search"
        f" SET document = document || ' ' || {_sqlite_fold('new.body_text')}"
        " WHERE rowid = new.ticket_id; END"
    )
    op.execute(
        "CREATE TRIGGER message_search_update AFTER UPDATE OF ticket_id, body_text ON messages"
        " WHEN old.ticket_id IS NOT new.ticket_id OR old.body_text IS NOT new.body_text BEGIN"
        f" UPDATE ticket_search SET document = {_sqlite_document('old.ticket_id')}"
        " WHERE rowid = old.ticket_id;"
        f" UPDATE ticket_search SET document = {_sqlite_document('new.ticket_id')}"
        " WHERE rowid = new.ticket_id; END"
    )
    op.execute(
        "CREATE TRIGGER message_search_delete AFTER DELETE ON messages BEGIN"
        f" UPDATE ticket_search SET document = {_sqlite_document('old.ticket_id')}"
        " WHERE rowid = old.ticket_id; END"
    )
    op.execute(
        "INSERT INTO ticket_search (rowid, document)"
        f" SELECT existing.id, {_sqlite_document('existing.id')} FROM tickets AS existing"
    )
