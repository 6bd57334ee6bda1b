"""The directory: shops, their registered users, and agents — managed by admins."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from store.enums import LOCALES
from store.errors import InvalidInput, RecordNotFound
from store.models import Agent, Shop, ShopUser

_ADDRESS = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$"
)


def normalize_address(email: str) -> str:
    """A bare, lower-cased addr-spec, or ``InvalidInput`` with the reason."""
    address = email.strip().lower()
    if not _ADDRESS.match(address) or len(address) > 320:
        raise InvalidInput(f"not a mail address: {email!r}")
    return address


def add_shop(
    session: Session, name: str, *, locale: str | None, rate: float, now: datetime
) -> Shop:
    name = name.strip()
    if not name:
        raise InvalidInput("a shop needs a name")
    if locale is not None and locale not in LOCALES:
        raise InvalidInput(f"unknown locale {locale!r} (one of: {', '.join(LOCALES)})")
    if rate < 0:
        raise InvalidInput("the hourly rate cannot be negative")
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
    owner = shop_by_name(session, shop)
    if session.exec(select(ShopUser).where(ShopUser.email == address)).first() is not None:
        raise InvalidInput(f"{address} is already registered")
    if session.exec(select(Agent).where(Agent.email == address)).first() is not None:
        raise InvalidInput(f"{address} is an agent; an address is either an agent or a shop user")
    assert owner.id is not None
    user = ShopUser(email=address, name=name.strip(), shop_id=owner.id, created_at=now)
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
    for sector in sectors:
        if sector not in known_sectors:
            raise InvalidInput(f"unknown sector {sector!r} (one of: {', '.join(known_sectors)})")
    if session.exec(select(Agent).where(Agent.email == address)).first() is not None:
        raise InvalidInput(f"{address} is already an agent")
    if session.exec(select(ShopUser).where(ShopUser.email == address)).first() is not None:
        raise InvalidInput(
            f"{address} is a shop user; an address is either an agent or a shop user"
        )
    agent = Agent(email=address, name=name.strip(), sectors=",".join(sectors), created_at=now)
    session.add(agent)
    session.flush()
    return agent


def list_agents(session: Session) -> list[Agent]:
    return list(session.exec(select(Agent).order_by(col(Agent.email))))
