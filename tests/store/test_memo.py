"""What a transaction remembers (agents, meta switches) is forgotten when it changes them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import event

from store.db import Database
from store.directory import add_agent, is_active_agent, sector_agents
from store.lookups import StoreReader
from store.meta import get_value, set_value
from store.models import Agent

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SECTORS = ("payments", "import")


def _count_selects(db: Database) -> list[str]:
    seen: list[str] = []

    @event.listens_for(db.engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    return seen


def test_the_agents_are_read_once_per_transaction(db: Database) -> None:
    with db.write() as s:
        add_agent(
            s,
            "maria@support.example",
            name="Maria",
            sectors=SECTORS[:1],
            known_sectors=SECTORS,
            now=NOW,
        )
    selects = _count_selects(db)
    with db.write() as s:
        reader = StoreReader(s)
        assert sector_agents(s, "payments") == ("maria@support.example",)
        assert reader.agent("MARIA@support.example") is not None
        assert is_active_agent(s, "maria@support.example")
        assert not is_active_agent(s, "ana@shop.example")
    assert sum("agents" in q for q in selects) == 1


def test_an_agent_added_in_the_transaction_is_seen_at_once(db: Database) -> None:
    with db.write() as s:
        assert sector_agents(s, "payments") == ()
        add_agent(
            s, "ioan@support.example", name="Ioan", sectors=SECTORS, known_sectors=SECTORS, now=NOW
        )
        assert sector_agents(s, "payments") == ("ioan@support.example",)
        assert StoreReader(s).agent("ioan@support.example") is not None


def test_an_agent_changed_and_flushed_in_the_transaction_is_seen(db: Database) -> None:
    with db.write() as s:
        add_agent(
            s, "ioan@support.example", name="Ioan", sectors=SECTORS, known_sectors=SECTORS, now=NOW
        )
    with db.write() as s:
        assert is_active_agent(s, "ioan@support.example")
        agent = s.get(Agent, 1)
        assert agent is not None
        agent.active = False
        s.add(agent)
        s.flush()
        assert not is_active_agent(s, "ioan@support.example")


def test_a_switch_set_in_the_transaction_is_read_back(db: Database) -> None:
    with db.write() as s:
        assert get_value(s, "peak_mode") is None
        set_value(s, "peak_mode", "on")
        assert get_value(s, "peak_mode") == "on"
        set_value(s, "peak_mode", "off")
        assert get_value(s, "peak_mode") == "off"
    with db.read() as s:
        assert get_value(s, "peak_mode") == "off"


def test_a_rolled_back_savepoint_forgets_what_it_saw(db: Database) -> None:
    with db.write() as s:
        try:
            with s.begin_nested():
                add_agent(
                    s,
                    "ioan@support.example",
                    name="Ioan",
                    sectors=SECTORS,
                    known_sectors=SECTORS,
                    now=NOW,
                )
                assert sector_agents(s, "import") == ("ioan@support.example",)
                raise RuntimeError("undo")
        except RuntimeError:
            pass
        assert sector_agents(s, "import") == ()
