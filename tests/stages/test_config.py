"""The configuration refuses values no gateway can run with, naming the key, before anything
starts; a list key set from the environment may be JSON or comma-separated."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from mailgate.config import load_settings
from mailgate.errors import ConfigError


@pytest.fixture(autouse=True)
def no_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults and the environment only: no mailgate.toml, no MAILGATE_CONFIG."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILGATE_CONFIG", raising=False)


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("MAILGATE_SMTP_PORT", "99999", "smtp.port"),
        ("MAILGATE_SMTP_MAX_RECIPIENTS", "0", "smtp.max_recipients"),
        ("MAILGATE_SMTP_MAX_MESSAGE_SIZE", "-5", "smtp.max_message_size"),
        ("MAILGATE_SMTP_LINE_LENGTH_LIMIT", "80", "smtp.line_length_limit"),
        ("MAILGATE_SMTP_ADDRESSES", "[]", "smtp.addresses"),
        ("MAILGATE_SMTP_ADDRESSES", "support", "smtp.addresses"),
        ("MAILGATE_STORE_URL", "bogus://x", "store.url"),
        ("MAILGATE_STORE_URL", "not a url", "store.url"),
        ("MAILGATE_STORE_BATCH_SIZE", "0", "store.batch_size"),
        ("MAILGATE_OUTBOUND_MAX_ATTEMPTS", "0", "outbound.max_attempts"),
        ("MAILGATE_AUTH_DNS_TIMEOUT", "0", "auth.dns_timeout"),
        ("MAILGATE_WORKFLOW_SCHEDULE_INTERVAL", "-1", "workflow.schedule_interval"),
    ],
)
def test_a_value_no_gateway_can_run_with_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, key: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=f"at {key}:"):
        load_settings()


def test_an_unsupported_store_url_is_refused_without_showing_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILGATE_STORE_URL", "mysql://mailgate:s3cret@db.example/mailgate")
    with pytest.raises(ConfigError) as refused:
        load_settings()
    assert "'mysql'" in str(refused.value) and "s3cret" not in str(refused.value)


def test_list_keys_from_the_environment_are_json_or_comma_separated(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAILGATE_SMTP_ADDRESSES", "support@magazin.ro, suport@magazin.ro")
    monkeypatch.setenv("MAILGATE_WORKFLOW_SECTORS", '["support", "billing"]')
    monkeypatch.setenv("MAILGATE_WORKFLOW_HOLIDAYS", "2026-12-25,2026-12-26")
    settings = load_settings()
    assert settings.smtp.addresses == ("support@magazin.ro", "suport@magazin.ro")
    assert settings.workflow.sectors == ("support", "billing")
    assert settings.workflow.holidays == (date(2026, 12, 25), date(2026, 12, 26))
