"""Settings: one TOML file, then ``MAILGATE_<SECTION>_<KEY>`` from the environment.

Loaded once by the CLI (``load_settings``) and passed down; stage code receives only
the section it needs. Every key is declared here once, with its type, default and
description, so this module doubles as the reference of the configuration file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

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
    busy_timeout_ms: int = Field(5000, description="SQLite: wait this long for a lock, then 451")
    batch_size: int = Field(64, description="mails committed together at most (group commit)")


class SmtpSettings(Section):
    host: str = Field("127.0.0.1", description="address the SMTP listener binds to")
    port: int = Field(2525, description="port of the SMTP listener (0: any free port)")
    addresses: tuple[str, ...] = Field(
        ("support@localhost",), description="accepted recipients; plus-addressing is implied"
    )
    hostname: str = Field("localhost", description="name the listener announces in its greeting")
    max_message_size: int = Field(26_214_400, description="SIZE limit in bytes (552 above it)")
    max_recipients: int = Field(50, description="RCPT TO per transaction (452 above it)")
    line_length_limit: int = Field(
        65_536, description="longest DATA line accepted; real clients exceed RFC 5322's 998"
    )
    timeout: float = Field(60.0, description="idle seconds before a slow client is dropped")
    workers: int = Field(8, description="threads that parse and keep mails in parallel")

    @field_validator("addresses", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(a.strip() for a in value.split(",") if a.strip())
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
    timeout: float = Field(30.0, description="seconds before a relay connection gives up")
    max_attempts: int = Field(12, description="tries before a notification is marked failed")
    retry_base_seconds: float = Field(60.0, description="first retry delay; doubles each time")
    retry_max_seconds: float = Field(3600.0, description="cap of the retry delay")
    lease_seconds: float = Field(
        300.0,
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
    host: str = Field(description="IMAP server")
    port: int = Field(993, description="IMAP port")
    user: str = Field(description="login")
    password_env: str | None = Field(None, description="environment variable with the password")
    password_file: str | None = Field(None, description="file readable only by the service")
    security: Literal["ssl", "starttls", "none"] = Field("ssl", description="transport security")
    cafile: str | None = Field(None, description="CA bundle for the server certificate")
    folder: str = Field("INBOX", description="folder to read")
    processed_folder: str = Field("Processed", description="where mails go once committed")
    poll_interval: float = Field(60.0, description="seconds between polls without IDLE")
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


class AuthSettings(Section):
    trusted_authserv_ids: tuple[str, ...] = Field(
        (), description="Authentication-Results from these hosts are trusted"
    )
    dns_resolver: str | None = Field(None, description="host:port of the DNS server for DKIM")
    dns_timeout: float = Field(5.0, description="seconds per DNS look-up")


class WorkflowSettings(Section):
    timezone: str = Field("UTC", description="time zone of the business calendar")
    country: str | None = Field(None, description="public holidays of this country pause SLAs")
    auto_close_days: int = Field(30, description="solved tickets close after this many days")
    standby_reminder_hours: int = Field(48, description="stand-by update interval")
    sectors: tuple[str, ...] = Field(
        ("support", "shipping", "payments", "marketing", "finance"),
        description="queues; the first is where triage starts",
    )


class SlaTargets(Section):
    immediate: str = "1h"
    high: str = "4h"
    normal: str = "8h"
    low: str = "24h"


class SlaSettings(Section):
    first_response: SlaTargets = SlaTargets()
    resolution: SlaTargets = SlaTargets(immediate="4h", high="16h", normal="40h", low="120h")


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
