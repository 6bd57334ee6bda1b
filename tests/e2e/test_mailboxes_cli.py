"""``mailgate mailboxes add|list|test|remove`` as an admin uses them, against the private
Dovecot: the config file keeps its comments, ``test`` explains each kind of failure in
one line, and passwords only come from the environment or a private file."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from dovecot import Dovecot, ImapAccount, free_port
from mailgate_testing import raw_mail, write_config
from typer.testing import CliRunner

from cli.main import app
from mailgate.app import build_gateway
from mailgate.config import load_settings
from mailgate.errors import ConfigError
from mailgate.passwords import read_password, read_password_file
from mailgate.sources.imap import ImapPoller

HEADER = """\
# Mailgate at Example: the store is shared by both gateways.
[store]
url = "{url}"   # PostgreSQL in production
raw = "{tmp}/raw"
attachments = "{tmp}/attachments"

# Notifications go to a local maildir while we test.
[outbound]
transport = "maildir:{tmp}/outbound"
"""


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = run(*args)
    assert code == 0, (code, out, err)
    return out


def one_line_error(*args: str) -> str:
    code, out, err = run(*args)
    assert code != 0, (out, err)
    assert err.startswith("mailgate: ") and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    return err.strip()


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Path:
    """A commented config file with no mailbox yet."""
    path = tmp_path / "mailgate.toml"
    path.write_text(HEADER.format(url=store_url, tmp=tmp_path))
    return path


def test_add_test_list_remove_keeps_the_comments(
    config: Path, tmp_path: Path, imap_account: ImapAccount
) -> None:
    password = private_file(tmp_path / "sales.password", imap_account.password + "\n")
    added = ok(
        "--config", str(config), "mailboxes", "add", "sales",
        "--host", "127.0.0.1", "--port", str(imap_account.server.plain_port),
        "--security", "none", "--user", imap_account.user, "--password-file", str(password),
    )  # fmt: skip
    assert "mailbox sales added" in added
    text = config.read_text()
    assert text.startswith(HEADER.format(url=load_settings(config).store.url, tmp=tmp_path))
    [sales] = tomllib.loads(text)["imap"]
    assert sales == {
        "name": "sales",
        "host": "127.0.0.1",
        "port": imap_account.server.plain_port,
        "security": "none",
        "user": imap_account.user,
        "folder": "INBOX",
        "processed_folder": "Processed",
        "password_file": str(password),
    }

    imap_account.append(raw_mail(message_id="<one@magazin.ro>"))
    imap_account.append(raw_mail(message_id="<two@magazin.ro>"))
    tested = ok("--config", str(config), "mailboxes", "test", "sales")
    assert "mailbox sales: ok" in tested and "'INBOX' has 2 waiting mails" in tested
    assert "IDLE yes, MOVE yes" in tested

    [before] = json.loads(ok("--config", str(config), "mailboxes", "list", "--json"))
    assert (before["name"], before["last_poll_at"], before["ingested"]) == ("sales", None, 0)
    gateway = build_gateway(load_settings(config))
    poller = ImapPoller(gateway.settings.imap[0], gateway.pipeline, gateway.db, gateway.clock)
    poller.poll_once()
    poller.disconnect()
    gateway.close()
    [after] = json.loads(ok("--config", str(config), "mailboxes", "list", "--json"))
    assert after["ingested"] == 2 and after["last_poll_at"] is not None
    assert after["last_error"] is None and after["password_file"] == str(password)
    assert "sales" in ok("--config", str(config), "mailboxes", "list")

    assert "removed" in ok("--config", str(config), "mailboxes", "remove", "sales")
    assert config.read_text() == HEADER.format(url=load_settings(config).store.url, tmp=tmp_path)
    assert json.loads(ok("--config", str(config), "mailboxes", "list", "--json")) == []


def test_remove_takes_the_comments_above_its_table_and_leaves_the_others(
    tmp_path: Path, sqlite_url: str
) -> None:
    config = tmp_path / "mailgate.toml"
    head = HEADER.format(url=sqlite_url, tmp=tmp_path)
    table = '[[imap]]  # {n}\nname = "{n}"\nhost = "imap.example.com"\nuser = "{n}@example.com"\n'
    table += 'password_env = "MAILGATE_IMAP_{N}_PASSWORD"\n'
    sales = "# sales: the shop owners write here\n" + table.format(n="sales", N="SALES")
    billing = "# billing: invoices\n# (moved from the old server)\n" + table.format(
        n="billing", N="BILLING"
    )
    tail = '# who may vouch for senders\n[auth]\ntrusted_authserv_ids = ["mx.example.com"]\n'
    config.write_text(f"{head}\n{sales}\n{billing}\n{tail}")

    ok("--config", str(config), "mailboxes", "remove", "billing")
    assert config.read_text() == f"{head}\n{sales}\n{tail}"
    ok("--config", str(config), "mailboxes", "remove", "SALES")  # names ignore case
    assert config.read_text() == f"{head}\n{tail}"


def test_add_refuses_a_taken_name_and_a_shared_password_file(config: Path, tmp_path: Path) -> None:
    ok("--config", str(config), "mailboxes", "add", "main", "--host", "imap.example.com",
       "--user", "support@example.com")  # fmt: skip
    assert tomllib.loads(config.read_text())["imap"][0]["password_env"] == (
        "MAILGATE_IMAP_MAIN_PASSWORD"
    )
    err = one_line_error("--config", str(config), "mailboxes", "add", "Main",
                         "--host", "x.example.com", "--user", "x")  # fmt: skip
    assert "already exists" in err
    shared = private_file(tmp_path / "shared.password", "secret\n", mode=0o644)
    err = one_line_error("--config", str(config), "mailboxes", "add", "other",
                         "--host", "x.example.com", "--user", "x",
                         "--password-file", str(shared))  # fmt: skip
    assert "open to other users (mode 0644)" in err and "chmod 600" in err
    err = one_line_error("--config", str(config), "mailboxes", "add", "bad name!",
                         "--host", "x.example.com", "--user", "x")  # fmt: skip
    assert "name" in err
    assert [m["name"] for m in tomllib.loads(config.read_text())["imap"]] == ["main"]


def test_add_refuses_an_empty_host_or_folder_and_processed_mail_left_where_it_is_read(
    config: Path,
) -> None:
    """Each was written to the file: a poller with no server, or one that moved every
    mail into the folder it reads, to read it again at each poll."""
    for extra, word in (
        (("--host", ""), "host"),
        (("--host", "x.example.com", "--folder", ""), "folder"),
        (("--host", "x.example.com", "--processed-folder", "INBOX"), "must differ"),
    ):
        err = one_line_error("--config", str(config), "mailboxes", "add", "other",
                             "--user", "x", *extra)  # fmt: skip
        assert word in err, (extra, err)
    assert "imap" not in tomllib.loads(config.read_text())


def test_mailboxes_add_creates_the_config_file_when_there_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAILGATE_CONFIG", raising=False)
    ok("mailboxes", "add", "main", "--host", "imap.example.com", "--user", "s@example.com",
       "--security", "starttls")  # fmt: skip
    [main] = tomllib.loads((tmp_path / "mailgate.toml").read_text())["imap"]
    assert (main["port"], main["security"]) == (143, "starttls")


# --- mailboxes test: one clear line per kind of failure -------------------------------


def _config_with(tmp_path: Path, store_url: str, account: ImapAccount, **overrides: object) -> str:
    return str(write_config(tmp_path, store_url, account.toml("main", **overrides)))


def test_mailboxes_test_over_tls_and_starttls_with_the_servers_ca(
    tmp_path: Path, sqlite_url: str, imap_account: ImapAccount, dovecot: Dovecot
) -> None:
    ca = str(dovecot.certfile)
    for overrides in (
        {"security": "ssl", "port": dovecot.tls_port, "cafile": ca},
        {"security": "starttls", "port": dovecot.plain_port, "cafile": ca},
    ):
        config = _config_with(tmp_path, sqlite_url, imap_account, **overrides)
        out = ok("--config", config, "mailboxes", "test", "main")
        assert f"({overrides['security']})" in out and "0 waiting mails" in out


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"host": "imap.nonexistent.invalid", "security": "ssl"},
            "cannot resolve imap.nonexistent.invalid",
        ),
        ({"port": "FREE"}, "refused the connection"),
        ({"security": "ssl", "port": "TLS"}, "is not trusted"),  # self-signed, no cafile
        ({"security": "ssl", "port": "PLAIN", "cafile": "CA"}, "TLS with 127.0.0.1"),
        ({"user": "nobody@localhost"}, "refused the login of nobody@localhost"),
        ({"processed_folder": "Archive"}, "folder 'Archive' does not exist"),
        ({"host": "192.0.2.1"}, 'security = "none" is only allowed for a server on this machine'),
    ],
    ids=["dns", "refused", "untrusted-cert", "tls-on-plain-port", "login", "folder", "cleartext"],
)
def test_mailboxes_test_explains_each_failure_in_one_line(
    overrides: dict[str, object], expected: str, tmp_path: Path, dovecot: Dovecot
) -> None:
    ports = {"FREE": free_port(), "TLS": dovecot.tls_port, "PLAIN": dovecot.plain_port}
    values = {
        key: ports.get(value, value) if key == "port" else value  # type: ignore[call-overload]
        for key, value in overrides.items()
    }
    if values.get("cafile") == "CA":
        values["cafile"] = str(dovecot.certfile)
    account = dovecot.add_account()
    config = _config_with(tmp_path, f"sqlite:///{tmp_path}/mailgate.db", account, **values)
    err = one_line_error("--config", config, "mailboxes", "test", "main")
    assert err.startswith("mailgate: mailbox main: ") and expected in err


def test_mailboxes_test_of_an_unknown_name(config: Path) -> None:
    assert "no mailbox 'ghost' configured" in one_line_error(
        "--config", str(config), "mailboxes", "test", "ghost"
    )


# --- passwords --------------------------------------------------------------------------


def test_a_password_in_the_config_file_is_refused(tmp_path: Path, sqlite_url: str) -> None:
    config = write_config(
        tmp_path, sqlite_url,
        '[[imap]]\nname = "main"\nhost = "h"\nuser = "u"\npassword = "hunter2"\n',
    )  # fmt: skip
    err = one_line_error("--config", str(config), "mailboxes", "list")
    assert "passwords are not read from the config file" in err and "hunter2" not in err


def test_the_designs_password_variable_does_not_disturb_the_config(
    tmp_path: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``MAILGATE_IMAP_MAIN_PASSWORD`` looks like an override of the ``imap`` key; it is not."""
    monkeypatch.setenv("MAILGATE_IMAP_MAIN_PASSWORD", "s3cret")
    config = write_config(
        tmp_path, sqlite_url,
        '[[imap]]\nname = "main"\nhost = "h"\nuser = "u"\n'
        'password_env = "MAILGATE_IMAP_MAIN_PASSWORD"\n',
    )  # fmt: skip
    [main] = load_settings(config).imap
    assert read_password(env=main.password_env, file=None, what="mailbox main") == "s3cret"


def test_password_files_must_be_private_and_not_empty(tmp_path: Path) -> None:
    good = private_file(tmp_path / "good", "correct horse\nignored second line\n")
    assert read_password_file(good, what="mailbox main") == "correct horse"
    for mode, text, expected in (
        (0o640, "x\n", "open to other users (mode 0640)"),
        (0o604, "x\n", "open to other users (mode 0604)"),
        (0o600, "", "is empty"),
    ):
        path = private_file(tmp_path / f"bad-{mode:o}-{len(text)}", text, mode)
        with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
            read_password_file(path, what="mailbox main")
    with pytest.raises(ConfigError, match="cannot read password file"):
        read_password_file(tmp_path / "missing", what="mailbox main")
    if os.geteuid() == 0:  # only root can give a file away
        foreign = private_file(tmp_path / "foreign", "x\n")
        os.chown(foreign, 65534, 65534)
        with pytest.raises(ConfigError, match="belongs to uid 65534"):
            read_password_file(foreign, what="mailbox main")
    with pytest.raises(ConfigError, match="MAILGATE_NOT_SET_ANYWHERE"):
        read_password(env="MAILGATE_NOT_SET_ANYWHERE", file=None, what="mailbox main")


def test_the_readme_example_config_is_valid(tmp_path: Path) -> None:
    """The complete example in the README's admin section loads as it stands."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    example = readme.split("### A complete example", 1)[1].split("```toml\n", 1)[1]
    config = tmp_path / "example.toml"
    config.write_text(example.split("```", 1)[0])
    settings = load_settings(config)
    assert [m.name for m in settings.imap] == ["sales", "billing"]
    assert settings.outbound.transport.startswith("smtp://")
