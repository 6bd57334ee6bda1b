"""Settings: one TOML file, then ``MAILGATE_<SECTION>_<KEY>`` from the environment.

Loaded once by the CLI (``load_settings``) and passed down; stage code receives only
the section it needs. Every key is declared here once, with its type, default and
description, so this module doubles as the reference of the configuration file.
"""

from __future__ import annotations

import os
import re
from datetime import date, time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CONFIG_ENV = "MAILGATE_CONFIG"
DEFAULT_CONFIG_FILE = Path("mailgate.toml")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreSettings(Section):
    url: str = Field("sqlite:///var/mailgate.db", description="SQLAlchemy URL of the ticket store")
    raw: str = Field("var/raw", description="folder of the raw mails, content-addressed")
    attachments: str = Field("var/attachments", description="folder of attachment files")
    blobs: Literal["files", "database"] = Field(
        "files",
        description='where raw mails and attachments are kept: "files" (the two folders) or '
        '"database" (for several gateways on one PostgreSQL without a shared disk)',
    )
    busy_timeout_ms: int = Field(
        5000, ge=0, description="SQLite: wait this long for a lock, then 451"
    )
    batch_size: int = Field(64, ge=1, description="mails committed together at most (group commit)")

    @field_validator("url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        # Not the URL itself in the message: it may hold a password.
        try:
            backend = make_url(value).get_backend_name()
        except ArgumentError:
            raise ValueError(
                "not a database URL (sqlite:///PATH, postgresql+psycopg://…)"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{backend!r}: the store is on sqlite or postgresql")
        return value


class SmtpSettings(Section):
    host: str = Field("127.0.0.1", description="address the SMTP listener binds to")
    port: int = Field(
        2525, ge=0, le=65535, description="port of the SMTP listener (0: any free port)"
    )
    addresses: tuple[str, ...] = Field(
        ("support@localhost",), description="accepted recipients; plus-addressing is implied"
    )
    hostname: str = Field("localhost", description="name the listener announces in its greeting")
    max_message_size: int = Field(
        26_214_400, ge=1, description="SIZE limit in bytes (552 above it)"
    )
    max_recipients: int = Field(50, ge=1, description="RCPT TO per transaction (452 above it)")
    line_length_limit: int = Field(
        65_536,
        ge=1000,
        description="longest DATA line accepted; real clients exceed RFC 5322's 998",
    )
    timeout: float = Field(60.0, gt=0, description="idle seconds before a slow client is dropped")
    workers: int = Field(8, ge=1, description="threads that parse and keep mails in parallel")
    prepare_processes: int = Field(
        1,
        ge=0,
        description="child processes that parse and keep mails beside the writer, each with"
        " `workers` threads (0: in the gateway's own threads)",
    )
    max_connections: int = Field(100, ge=1, description="clients served at once (421 above it)")
    max_session_seconds: float = Field(
        600.0,
        gt=0,
        description="a connection is closed after this long, however busy (slow clients)",
    )
    max_messages_per_connection: int = Field(
        100, ge=1, description="MAIL commands per connection (421 and close above it)"
    )
    command_line_limit: int = Field(
        512, ge=512, description="longest SMTP command line (RFC 5321: 512); 500 above it"
    )

    @field_validator("addresses", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
        return value

    @field_validator("addresses")
    @classmethod
    def _mail_addresses(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one address to accept mail for")
        for address in value:
            local, at, domain = address.rpartition("@")
            if not (local and at and domain) or any(c.isspace() for c in address):
                raise ValueError(f"not a mail address: {address!r}")
        return value


class OutboundSettings(Section):
    transport: str = Field(
        "maildir:var/outbound",
        description='"maildir:PATH", "smtp://host:port" (STARTTLS when offered) or "smtps://…"',
    )
    from_: str = Field(
        "Support <support@localhost>", alias="from", description="From of every notification"
    )
    user: str | None = Field(None, description="SMTP AUTH user of the relay")
    password_env: str | None = Field(None, description="environment variable holding its password")
    starttls: Literal["auto", "required", "off"] = Field(
        "auto", description="STARTTLS on smtp:// relays: when offered, always, or never"
    )
    cafile: str | None = Field(None, description="CA bundle to verify the relay's certificate")
    timeout: float = Field(30.0, gt=0, description="seconds before a relay connection gives up")
    max_attempts: int = Field(12, ge=1, description="tries before a notification is marked failed")
    retry_base_seconds: float = Field(
        60.0, gt=0, description="first retry delay; doubles each time"
    )
    retry_max_seconds: float = Field(3600.0, gt=0, description="cap of the retry delay")
    lease_seconds: float = Field(
        300.0,
        gt=0,
        description="a claimed notification is taken over by another dispatcher after this "
        "long if its sender died (it may then be sent twice, with the same Message-ID)",
    )
    message_id_domain: str | None = Field(
        None, description="domain of our Message-IDs (default: the From address's domain)"
    )
    secret_env: str = Field(
        "MAILGATE_SECRET", description="environment variable with the server secret (HMACs)"
    )

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def password(self) -> SecretStr | None:
        if not self.password_env:
            return None
        value = os.environ.get(self.password_env)
        return SecretStr(value) if value is not None else None


class ImapSettings(Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$",
        description="short name of the mailbox, used by the CLI (letters, digits, - and _)",
    )
    host: str = Field(min_length=1, description="IMAP server")
    port: int = Field(993, ge=1, le=65535, description="IMAP port")
    user: str = Field(min_length=1, description="login")
    password_env: str | None = Field(None, description="environment variable with the password")
    password_file: str | None = Field(None, description="file readable only by the service")
    security: Literal["ssl", "starttls", "none"] = Field("ssl", description="transport security")
    cafile: str | None = Field(None, description="CA bundle for the server certificate")
    folder: str = Field("INBOX", min_length=1, description="folder to read")
    processed_folder: str = Field(
        "Processed", min_length=1, description="where mails go once committed"
    )
    poll_interval: float = Field(60.0, gt=0, description="seconds between polls without IDLE")
    idle: bool = Field(True, description="use IDLE when the server offers it")
    batch_size: int = Field(50, ge=1, description="mails fetched per round")

    @model_validator(mode="before")
    @classmethod
    def _password_not_here(cls, values: Any) -> Any:
        # A password in the config file ends up in backups, diffs and support tickets.
        if isinstance(values, dict) and "password" in values:
            raise ValueError(
                "passwords are not read from the config file: use password_env or password_file"
            )
        return values

    @model_validator(mode="after")
    def _one_password_source(self) -> ImapSettings:
        if (self.password_env is None) == (self.password_file is None):
            raise ValueError(
                f"mailbox {self.name!r}: set exactly one of password_env, password_file"
            )
        return self

    @model_validator(mode="after")
    def _another_folder_for_the_processed(self) -> ImapSettings:
        # Moved into the folder it is read from, a mail would be read again at every poll.
        if self.processed_folder == self.folder:
            raise ValueError(f"mailbox {self.name!r}: processed_folder must differ from folder")
        return self


class AuthSettings(Section):
    trusted_authserv_ids: tuple[str, ...] = Field(
        (), description="Authentication-Results from these hosts are trusted"
    )
    dns_resolver: str | None = Field(None, description="host:port of the DNS server for DKIM")
    dns_timeout: float = Field(5.0, gt=0, description="seconds per DNS look-up")
    confidential_rules: str | None = Field(
        None, description="TOML file of confidential-request keywords (default: built-in)"
    )
    confirmation_hours: int = Field(
        72, ge=1, description="how long a confirmation mailed to a registered address stays good"
    )


class LimitSettings(Section):
    per_ticket_recipient: int = Field(
        10, ge=1, description="mails to one recipient per ticket within per_ticket_minutes"
    )
    per_ticket_minutes: int = Field(10, ge=1, description="the window of per_ticket_recipient")
    automatic_per_address_per_day: int = Field(
        40, ge=0, description="automatic answers (acknowledgements, notices) to one address per day"
    )
    bounce_quiet_days: int = Field(
        60, ge=0, description="no automatic mail to an address this long after it bounced for good"
    )
    copied_per_ticket: int = Field(
        48,
        ge=0,
        le=10_000,
        description="copied (Cc) addresses a ticket keeps; a mail's further ones are not added",
    )


class WorkflowSettings(Section):
    timezone: str = Field("UTC", description="time zone of the business calendar")
    country: str | None = Field(None, description="public holidays of this country pause SLAs")
    auto_close_days: int = Field(30, ge=1, description="solved tickets close after this many days")
    standby_reminder_hours: int = Field(48, ge=1, description="stand-by update interval")
    sectors: tuple[str, ...] = Field(
        ("support", "shipping", "payments", "marketing", "finance"),
        description="queues; the first is where triage starts",
    )
    working_days: tuple[str, ...] = Field(
        ("mon", "tue", "wed", "thu", "fri"), description="days the business calendar works"
    )
    working_hours: str = Field(
        "09:00-17:00", description='local working hours, "HH:MM-HH:MM" ("24:00" is midnight)'
    )
    holidays: tuple[date, ...] = Field(
        (), description="extra closed days (YYYY-MM-DD) on top of the country's holidays"
    )
    schedule_interval: float = Field(
        60.0, gt=0, description="seconds between runs of the periodic jobs inside serve"
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import holidays

        code = value.strip().upper()
        if code not in holidays.list_supported_countries():
            raise ValueError(f"no public-holiday calendar for country {value!r}")
        return code

    @field_validator("working_days", mode="before")
    @classmethod
    def _days(cls, value: Any) -> Any:
        days = value.split(",") if isinstance(value, str) else value
        result = tuple(str(d).strip().lower()[:3] for d in days if str(d).strip())
        for day in result:
            if day not in WEEKDAYS:
                raise ValueError(f"unknown day {day!r} (use {', '.join(WEEKDAYS)})")
        if not result:
            raise ValueError("at least one working day is needed")
        return result

    @field_validator("working_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_working_hours(value)
        return value

    @field_validator("holidays", mode="before")
    @classmethod
    def _split_dates(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(d.strip() for d in value.split(",") if d.strip())
        return value


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")
_CLOCK_TIME = re.compile(r"([01]?\d|2[0-4]):([0-5]\d)")


def parse_duration(value: str) -> float:
    """Seconds in ``"1h"``, ``"30m"``, ``"2h30m"``, ``"90s"``; raises ``ValueError``."""
    text = value.strip().lower().replace(" ", "")
    match = _DURATION.fullmatch(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f'bad duration {value!r} (like "8h", "30m" or "2h30m")')
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_working_hours(value: str) -> tuple[time, time | None]:
    """``"09:00-17:00"`` as (opens, closes); closes None for ``"24:00"``. ``ValueError``."""
    parts = value.replace(" ", "").split("-")
    found = [_CLOCK_TIME.fullmatch(p) for p in parts]
    if len(parts) != 2 or None in found:
        raise ValueError(f'bad working hours {value!r} (like "09:00-17:00")')
    (oh, om), (ch, cm) = ((int(m[1]), int(m[2])) for m in found if m)
    if oh == 24 or (ch == 24 and cm):
        raise ValueError(f"bad working hours {value!r}")
    opens = time(oh, om)
    closes = None if ch == 24 else time(ch, cm)
    if closes is not None and closes <= opens:
        raise ValueError(f"working hours {value!r} close before they open")
    return opens, closes


class TypeTargets(Section):
    """Targets for one ticket type; a priority left out uses the priority's own target."""

    immediate: str | None = None
    high: str | None = None
    normal: str | None = None
    low: str | None = None

    @field_validator("immediate", "high", "normal", "low")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value


class SlaTargets(Section):
    immediate: str = Field("1h", description="target of immediate tickets (24/7 clock)")
    high: str = Field("4h", description="target of high tickets (business time)")
    normal: str = Field("8h", description="target of normal tickets (business time)")
    low: str = Field("24h", description="target of low tickets (business time)")
    question: TypeTargets | None = Field(None, description="own targets for questions")
    problem: TypeTargets | None = Field(None, description="own targets for problems")
    development: TypeTargets | None = Field(None, description="own targets for development")

    @field_validator("immediate", "high", "normal", "low")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class SlaSettings(Section):
    first_response: SlaTargets = Field(
        SlaTargets(), description="time to the first agent answer, per priority (and type)"
    )
    resolution: SlaTargets = Field(
        SlaTargets(immediate="4h", high="16h", normal="40h", low="120h"),
        description="time to solved, per priority (and type)",
    )


class LogSettings(Section):
    format: Literal["text", "json"] = Field(
        "text", description='"text" for people, "json" for one JSON object per line'
    )
    mail_lines: bool = Field(
        True, description="serve logs one line per mail: Message-ID, ticket, verdict, ms"
    )


class AttachmentSettings(Section):
    max_size: int = Field(
        10_485_760,
        gt=0,
        description="bytes per attachment; a larger one stays in the raw mail only, is listed "
        "as too large, and the sender is told",
    )
    max_total_size: int = Field(
        20_971_520,
        gt=0,
        description="bytes of attachments kept per mail, in the order they come; the rest "
        "are listed as too large",
    )


class TemplateSettings(Section):
    override_dir: str | None = Field(
        None,
        description="folder of edited templates (<lang>/<kind>.txt.j2 and .html.j2): a file "
        "there replaces the built-in one of the same name",
    )


class Settings(BaseSettings):
    """The whole configuration tree."""

    model_config = SettingsConfigDict(
        env_prefix="MAILGATE_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        extra="forbid",
        frozen=True,
    )

    store: StoreSettings = StoreSettings()
    smtp: SmtpSettings = SmtpSettings()
    outbound: OutboundSettings = OutboundSettings()
    imap: tuple[ImapSettings, ...] = ()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()
    workflow: WorkflowSettings = WorkflowSettings()
    sla: SlaSettings = SlaSettings()
    log: LogSettings = LogSettings()
    attachments: AttachmentSettings = AttachmentSettings()
    templates: TemplateSettings = TemplateSettings()

    @field_validator("imap")
    @classmethod
    def _unique_mailbox_names(cls, value: tuple[ImapSettings, ...]) -> tuple[ImapSettings, ...]:
        names = [mailbox.name.lower() for mailbox in value]
        doubles = sorted({name for name in names if names.count(name) > 1})
        if doubles:
            raise ValueError(f"mailbox names must be unique: {', '.join(doubles)}")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = _CONFIG_PATH_FOR_LOAD.get("path")
        sources: list[PydanticBaseSettingsSource] = [init_settings, _EnvWithoutMailboxes(cls)]
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)


class _EnvWithoutMailboxes(EnvSettingsSource):
    """The environment, except ``MAILGATE_IMAP_*``: mailboxes are a list that only the file
    can hold, and ``MAILGATE_IMAP_<NAME>_PASSWORD`` is where their passwords live — read
    as the ``imap`` key, such a variable would replace every configured mailbox."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        values.pop("imap", None)
        return values

    def decode_complex_value(self, field_name: str, field: FieldInfo, value: Any) -> Any:
        """A list key's value as JSON (``["a@x", "b@x"]``), as pydantic-settings reads it, or
        else as the comma-separated list a person writes: ``MAILGATE_SMTP_ADDRESSES=a@x,b@x``."""
        try:
            return super().decode_complex_value(field_name, field, value)
        except ValueError:
            return [item.strip() for item in str(value).split(",") if item.strip()]


# pydantic-settings builds sources from the class; this hands it the file chosen at load time.
_CONFIG_PATH_FOR_LOAD: dict[str, Path | None] = {"path": None}


def config_path(explicit: str | Path | None = None) -> Path | None:
    """The config file in force: ``--config``, then ``MAILGATE_CONFIG``, then ./mailgate.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG_FILE if DEFAULT_CONFIG_FILE.exists() else None


def load_settings(explicit: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the configuration; raises ``ConfigError`` with one readable line on bad input."""
    from pydantic import ValidationError

    from mailgate.errors import ConfigError

    path = config_path(explicit)
    if path is not None and not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    _CONFIG_PATH_FOR_LOAD["path"] = path
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")  # pydantic's prefix for our checks
        raise ConfigError(f"bad configuration at {where}: {message}") from exc
    except (OSError, ValueError) as exc:  # TOML syntax errors are ValueErrors
        raise ConfigError(f"cannot read config {path}: {exc}") from exc
    finally:
        _CONFIG_PATH_FOR_LOAD["path"] = None
