"""A private Dovecot for the IMAP tests: its own config, folders, users and ports.

``Dovecot(root, certificate).start()`` runs the Debian package's server
(``/usr/sbin/dovecot``, package ``dovecot-imapd``) in the foreground as ``dovecot -c
CONF -F``, with every path (base_dir, state_dir, log, mail) under ``root`` and two
listeners on 127.0.0.1: a plain port that offers STARTTLS and an implicit-TLS port, both
with a self-signed certificate made for the run. Nothing of the system's Dovecot is
used; ``scripts/setup --test`` installs the package and stops the system instance.

Users live in passwd-files, one per user (the file name is the user, so a user added
while the server runs is found at once, with no re-read of a shared file to wait for):
``add_account()`` makes a fresh user with its own maildir, so tests sharing one server
never see each other's mail. An ``ImapAccount`` delivers by IMAP APPEND and lists folders for the
assertions, and makes the ``ImapSettings`` of a mailbox that reads it.

Dovecot refuses to run its login and mail processes as root: run as root (CI
containers), it uses the package's unprivileged ``dovenull`` and ``dovecot`` users;
run as anyone else, every process runs as that user.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imapclient import IMAPClient

from mailgate.config import ImapSettings

DOVECOT = Path("/usr/sbin/dovecot")
START_TIMEOUT = 20.0


@dataclass(frozen=True)
class _Identity:
    """Who Dovecot's processes run as."""

    internal_user: str
    internal_group: str
    login_user: str
    mail_uid: int
    mail_gid: int


def _identity() -> _Identity:
    if os.geteuid() == 0:
        mail = pwd.getpwnam("dovecot")
        return _Identity(
            internal_user="dovecot",
            internal_group=grp.getgrgid(mail.pw_gid).gr_name,
            login_user="dovenull",
            mail_uid=mail.pw_uid,
            mail_gid=mail.pw_gid,
        )
    me = pwd.getpwuid(os.getuid())
    group = grp.getgrgid(os.getgid()).gr_name
    return _Identity(me.pw_name, group, me.pw_name, os.getuid(), os.getgid())


def free_port() -> int:
    """A port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Dovecot:
    """One private Dovecot server; ``start()``, ``add_account()``, ``stop()``."""

    def __init__(self, certfile: Path, keyfile: Path) -> None:
        # Not under pytest's tmp_path: its folders are closed to the unprivileged users
        # Dovecot runs as, and UNIX socket paths there can exceed the 108-byte limit.
        self.root = Path(tempfile.mkdtemp(prefix="mg-dovecot-"))
        self.certfile = certfile
        self.keyfile = keyfile
        self.identity = _identity()
        self.plain_port = 0
        self.tls_port = 0
        self.users = self.root / "users"
        self.homes = self.root / "homes"
        self.log = self.root / "dovecot.log"
        self._process: subprocess.Popen[bytes] | None = None

    # --- life cycle ---------------------------------------------------------------------

    def start(self, *, plain_port: int = 0, tls_port: int = 0) -> Dovecot:
        """Start the server on the given ports, else on free ones (tried again with other
        ports if they were taken meanwhile)."""
        if not DOVECOT.exists():
            raise RuntimeError(f"{DOVECOT} missing: apt-get install dovecot-imapd")
        self._prepare()
        for _ in range(3):
            self.plain_port = plain_port or free_port()
            self.tls_port = tls_port or free_port()
            conf = self.root / "dovecot.conf"
            conf.write_text(self._config())
            with (self.root / "stderr.log").open("ab") as stderr:  # the child keeps a copy
                self._process = subprocess.Popen(
                    [str(DOVECOT), "-c", str(conf), "-F"],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            if self._wait_until_listening():
                return self
            self.stop()
        raise RuntimeError(f"dovecot did not start:\n{self.log_text()}")

    def _prepare(self) -> None:
        self.root.chmod(0o755)
        self.homes.mkdir(exist_ok=True)
        os.chown(self.homes, self.identity.mail_uid, self.identity.mail_gid)
        self.users.mkdir(exist_ok=True)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def remove(self) -> None:
        """Stop, then delete every file of this server."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_text(self) -> str:
        parts = [p.read_text(errors="replace") for p in (self.log, self.root / "stderr.log")]
        return "".join(p for p in parts if p)

    def _wait_until_listening(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                return False
            try:
                for port in (self.plain_port, self.tls_port):
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    # --- users --------------------------------------------------------------------------

    def add_account(self, *, processed_folder: bool = True) -> ImapAccount:
        """A new user with an empty INBOX and (unless told not to) a ``Processed`` folder.

        Without the folder the server need not be running yet."""
        self._prepare()
        user = f"u{uuid.uuid4().hex[:12]}@localhost"
        password = uuid.uuid4().hex
        (self.users / user).write_text(f"{user}:{{PLAIN}}{password}::::::\n")
        account = ImapAccount(self, user, password)
        if processed_folder:
            account.create_folder("Processed")
        return account

    def kick(self, user: str) -> None:
        """End every IMAP session of ``user`` from the server side (``doveadm kick``)."""
        subprocess.run(
            ["doveadm", "-c", str(self.root / "dovecot.conf"), "kick", user],
            check=True,
            capture_output=True,
        )

    def _config(self) -> str:
        i, root = self.identity, self.root
        return f"""
base_dir = {root}/run
state_dir = {root}/state
instance_name = mg-{root.name}
log_path = {self.log}
protocols = imap
listen = 127.0.0.1
default_internal_user = {i.internal_user}
default_internal_group = {i.internal_group}
default_login_user = {i.login_user}
ssl = yes
ssl_cert = <{self.certfile}
ssl_key = <{self.keyfile}
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {i.mail_uid}
first_valid_gid = {i.mail_gid}
mail_fsync = never
mail_max_userip_connections = 200
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {self.users}/%u
}}
userdb {{
  driver = static
  args = uid={i.mail_uid} gid={i.mail_gid} home={self.homes}/%u
}}
mail_location = maildir:~/Maildir
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.plain_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {self.tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


@dataclass
class ImapAccount:
    """One user of the private Dovecot: deliver by APPEND, look at folders, make settings."""

    server: Dovecot
    user: str
    password: str

    @contextlib.contextmanager
    def client(self) -> Iterator[IMAPClient]:
        """A plain-text IMAP session, logged in (the test's own, not the poller's)."""
        client = IMAPClient("127.0.0.1", self.server.plain_port, ssl=False, timeout=10)
        try:
            client.login(self.user, self.password)
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def create_folder(self, folder: str) -> None:
        with self.client() as client:
            client.create_folder(folder)

    def append(self, raw: bytes, folder: str = "INBOX") -> None:
        """Deliver ``raw`` into ``folder`` (IMAP APPEND, as a mail server's LDA would)."""
        with self.client() as client:
            client.append(folder, raw)

    def messages(self, folder: str = "INBOX", *, deleted: bool = False) -> list[bytes]:
        """The raw mails in ``folder`` by UID (flagged \\Deleted ones only if asked)."""
        with self.client() as client:
            client.select_folder(folder, readonly=True)
            uids = client.search("ALL" if deleted else "UNDELETED")
            fetched = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
            return [fetched[uid][b"BODY[]"] for uid in sorted(uids)]

    def count(self, folder: str = "INBOX") -> int:
        """Mails in ``folder``, flagged \\Deleted or not."""
        with self.client() as client:
            return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])

    def settings(self, name: str = "main", **overrides: Any) -> ImapSettings:
        """A mailbox reading this account over the plain port (loopback: no TLS needed).

        The password goes into a file of mode 600 (``password_file``).
        """
        password_file = self.server.root / f"{self.user}.password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        values: dict[str, Any] = {
            "name": name,
            "host": "127.0.0.1",
            "port": self.server.plain_port,
            "user": self.user,
            "password_file": str(password_file),
            "security": "none",
            "poll_interval": 0.5,
        }
        values.update(overrides)
        return ImapSettings(**values)

    def toml(self, name: str = "main", **overrides: Any) -> str:
        """The ``[[imap]]`` section of a config file for ``settings(name, **overrides)``."""
        values = self.settings(name, **overrides).model_dump(exclude_none=True)
        lines = ["[[imap]]"]
        for key, value in values.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, int | float):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f"{key} = {json.dumps(value)}")
        return "\n".join(lines) + "\n"
