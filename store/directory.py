"""The directory: shops, their registered users, and agents — managed by admins."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.enums import LOCALES, Status
from store.errors import InvalidInput, RecordNotFound
from store.lookups import active_agents
from store.models import Agent, Shop, ShopUser, Ticket
from store.tickets import set_field

_ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


NAME_LENGTH = 200  # of a shop's, a user's or an agent's name (their columns' length)
MAX_RATE = 1_000_000.0  # per hour: anything above is a typing error


def checked_name(name: str, what: str) -> str:
    """``name`` without its outer spaces; ``InvalidInput`` when longer than its column."""
    name = name.strip()
    if len(name) > NAME_LENGTH:
        raise InvalidInput(f"{what} is too long: {len(name)} characters, at most {NAME_LENGTH}")
    return name


def normalize_address(email: str) -> str:
    """A bare, lower-cased addr-spec, or ``InvalidInput`` with the reason."""
    address = email.strip().lower()
    if not _ADDRESS.match(address) or len(address) > 320:
        raise InvalidInput(f"not a mail address: {email!r}")
    return address


def add_shop(
    session: Session, name: str, *, locale: str | None, rate: float, now: datetime
) -> Shop:
    name = checked_name(name, "the shop's name")
    if not name:
        raise InvalidInput("a shop needs a name")
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(f"unknown locale {locale!r} (one of: {', '.join(LOCALES)})")
    if not math.isfinite(rate) or not 0 <= rate <= MAX_RATE:
        raise InvalidInput(f"the hourly rate must be a number from 0 to {MAX_RATE:.0f}, not {rate}")
    if session.exec(select(Shop).where(Shop.name == name)).first() is not None:
        raise InvalidInput(f"shop {name!r} already exists")
    shop = Shop(name=name, locale=locale, hourly_rate=rate, created_at=now)
    session.add(shop)
    session.flush()
    return shop


def shop_by_name(session: Session, name: str) -> Shop:
    shop = session.exec(select(Shop).where(Shop.name == name.strip())).first()
    if shop is None:
        raise RecordNotFound(f"no shop named {name!r}")
    return shop


def list_shops(session: Session) -> list[Shop]:
    return list(session.exec(select(Shop).order_by(col(Shop.name))))


def add_user(session: Session, email: str, *, shop: str, name: str, now: datetime) -> ShopUser:
    address = normalize_address(email)
    name = checked_name(name, "the user's name")
    owner = shop_by_name(session, shop)
    if session.exec(select(ShopUser).where(ShopUser.email == address)).first() is not None:
        raise InvalidInput(f"{address} is already registered")
    if session.exec(select(Agent).where(Agent.email == address)).first() is not None:
        raise InvalidInput(f"{address} is an agent; an address is either an agent or a shop user")
    assert owner.id is not None
    user = ShopUser(email=address, name=name, shop_id=owner.id, created_at=now)
    session.add(user)
    try:
        session.flush()
    except IntegrityError:
        raise InvalidInput(f"{address} is already registered") from None
    return user


def list_users(session: Session, shop: str | None = None) -> list[tuple[ShopUser, str]]:
    stmt = select(ShopUser, Shop.name).join(Shop, col(Shop.id) == col(ShopUser.shop_id))
    if shop:
        stmt = stmt.where(Shop.name == shop)
    return [(u, s) for u, s in session.exec(stmt.order_by(col(Shop.name), col(ShopUser.email)))]


def remove_user(session: Session, email: str) -> None:
    address = normalize_address(email)
    user = session.exec(select(ShopUser).where(ShopUser.email == address)).first()
    if user is None:
        raise RecordNotFound(f"{address} is not a registered shop user")
    session.delete(user)


def add_agent(
    session: Session,
    email: str,
    *,
    name: str,
    sectors: tuple[str, ...],
    known_sectors: tuple[str, ...],
    now: datetime,
) -> Agent:
    address = normalize_address(email)
    name = checked_name(name, "the agent's name")
    for sector in sectors:
        if sector not in known_sectors:
            raise InvalidInput(f"unknown sector {sector!r} (one of: {', '.join(known_sectors)})")
    if session.exec(select(Agent).where(Agent.email == address)).first() is not None:
        raise InvalidInput(f"{address} is already an agent")
    if session.exec(select(ShopUser).where(ShopUser.email == address)).first() is not None:
        raise InvalidInput(
            f"{address} is a shop user; an address is either an agent or a shop user"
        )
    agent = Agent(email=address, name=name, sectors=",".join(sectors), created_at=now)
    session.add(agent)
    session.flush()
    return agent


def set_agent_active(
    session: Session, email: str, active: bool, *, actor: str, now: datetime
) -> int:
    """Let an agent work again, or stop them; returns how many tickets were unassigned.

    A stopped agent is sent nothing and their mail is a stranger's (``active_agents``).
    Their tickets not yet closed go back to their sectors: each is unassigned, in its
    history, so that the sector's agents hear of its replies and its SLA breaches."""
    address = normalize_address(email)
    agent = session.exec(select(Agent).where(Agent.email == address)).first()
    if agent is None:
        raise RecordNotFound(f"{address} is not an agent")
    agent.active = active
    session.add(agent)
    if active:
        return 0
    tickets = session.exec(
        select(Ticket)
        .where(Ticket.assignee == address, Ticket.status != Status.CLOSED.value)
        .order_by(col(Ticket.id))
    ).all()
    for ticket in tickets:
        set_field(session, ticket, "assignee", None, actor=actor, now=now)
    return len(tickets)


def list_agents(session: Session) -> list[Agent]:
    return list(session.exec(select(Agent).order_by(col(Agent.email))))


def is_active_agent(session: Session, email: str) -> bool:
    return email.lower() in active_agents(session)


def agent_named(session: Session, who: str) -> str | None:
    """The address of the active agent ``who`` names, or None when no active agent does.

    An address names its agent. A word without ``@`` (``#assign ana``) names the one
    active agent whose address is that word before its ``@`` (``ana@…``), whose name it
    is, or whose name's first word it is; ``InvalidInput`` when it fits several."""
    wanted = who.strip().lower()
    agents = active_agents(session)
    if "@" in wanted:
        return wanted if wanted in agents else None
    fits = [a.email for a in agents.values() if wanted and wanted in _names_of(a.email, a.name)]
    if len(fits) > 1:
        raise InvalidInput(f"{who!r} fits {len(fits)} agents ({', '.join(fits)}): give the address")
    return fits[0] if fits else None


def _names_of(email: str, name: str) -> set[str]:
    words = name.lower().split()
    return {email.partition("@")[0], " ".join(words), *words[:1]}


def sector_agents(session: Session, sector: str) -> tuple[str, ...]:
    """Addresses of the active agents subscribed to ``sector``, in order of address."""
    return tuple(a.email for a in active_agents(session).values() if sector in a.sectors)


# --- CSV import ------------------------------------------------------------------------

CSV_COLUMNS = ("email", "shop", "name")
_MAX_REPORTED = 10


@dataclass(frozen=True, slots=True)
class ImportSummary:
    added: int
    unchanged: int  # already registered for the same shop


def import_users_csv(session: Session, text: str, *, now: datetime) -> ImportSummary:
    """Register the shop users of a CSV file (columns ``email,shop[,name]``, a header line).

    All or nothing: every row is checked first, and one bad row (bad address, unknown
    shop, an agent's address, a user of another shop, a repeated address) raises
    ``InvalidInput`` naming the lines, before anything is written. A user already
    registered for the same shop is left as is, so the import can be run twice.
    """
    rows = _read_rows(text)
    shops = {s.name: s for s in list_shops(session)}
    agents = {a.email for a in list_agents(session)}
    existing = {u.email: shop for u, shop in list_users(session)}
    errors: list[str] = []
    seen: dict[str, int] = {}
    wanted: list[tuple[str, Shop, str]] = []
    unchanged = 0
    for line, values in rows:
        try:
            address = normalize_address(values.get("email", ""))
        except InvalidInput as exc:
            errors.append(f"line {line}: {exc}")
            continue
        shop_name = values.get("shop", "").strip()
        problem = _row_problem(
            address, shop_name, shops=shops, agents=agents, existing=existing, seen=seen
        )
        if problem is not None:
            errors.append(f"line {line}: {problem}")
            continue
        seen[address] = line
        if existing.get(address) == shop_name:
            unchanged += 1
        else:
            wanted.append((address, shops[shop_name], values.get("name", "").strip()))
    if errors:
        shown = "; ".join(errors[:_MAX_REPORTED])
        more = f"; and {len(errors) - _MAX_REPORTED} more" if len(errors) > _MAX_REPORTED else ""
        raise InvalidInput(f"{len(errors)} bad row(s), nothing imported: {shown}{more}")
    for address, shop, name in wanted:
        assert shop.id is not None
        session.add(
            ShopUser(email=address, name=name[:NAME_LENGTH], shop_id=shop.id, created_at=now)
        )
    session.flush()
    return ImportSummary(added=len(wanted), unchanged=unchanged)


def _read_rows(text: str) -> list[tuple[int, dict[str, str]]]:
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), skipinitialspace=True)
    header = [h.strip().lower() for h in reader.fieldnames or ()]
    if "email" not in header or "shop" not in header:
        raise InvalidInput(
            f"the first line must name the columns ({','.join(CSV_COLUMNS)}); found: "
            + (",".join(header) or "nothing")
        )
    reader.fieldnames = header
    rows: list[tuple[int, dict[str, str]]] = []
    try:
        for values in reader:
            if not any((v or "").strip() for v in values.values() if isinstance(v, str)):
                continue  # a blank line
            clean = {k: v.strip() for k, v in values.items() if isinstance(k, str) and v}
            rows.append((reader.line_num, clean))
    except csv.Error as exc:
        raise InvalidInput(f"line {reader.line_num}: unreadable CSV: {exc}") from exc
    return rows


def _row_problem(
    address: str,
    shop_name: str,
    *,
    shops: dict[str, Shop],
    agents: set[str],
    existing: dict[str, str],
    seen: dict[str, int],
) -> str | None:
    if not shop_name:
        return f"{address}: no shop given"
    if shop_name not in shops:
        return f"{address}: no shop named {shop_name!r}"
    if address in agents:
        return f"{address} is an agent; an address is either an agent or a shop user"
    if address in seen:
        return f"{address} also on line {seen[address]}"
    registered = existing.get(address)
    if registered is not None and registered != shop_name:
        return f"{address} is already registered for shop {registered!r}"
    return None
