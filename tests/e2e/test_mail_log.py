"""The mail log: one line per committed mail (Message-ID, ticket, outcome, verdict, ms),
as text or as one JSON object per line (``[log] format = "json"``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from mailgate_testing import raw_mail
from serve_process import REPO

from mailgate.app import Gateway
from mailgate.clock import ManualClock
from mailgate.config import LogSettings
from mailgate.logs import MAIL_LOGGER, JsonFormatter, configure_logging
from mailgate.values import Arrival, Envelope, Source


def _arrive(gateway: Gateway, clock: ManualClock, raw: bytes) -> None:
    arrival = Arrival(
        raw, Envelope("ana@magazin.ro", ("support@localhost",)), Source("pipe"), clock()
    )
    prepared = gateway.pipeline.prepare(arrival)
    clock.advance(seconds=0.25)  # parsing and committing take a quarter of a second
    gateway.pipeline.commit([prepared])


def test_each_committed_mail_is_one_line_with_its_facts(
    gateway: Gateway, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=MAIL_LOGGER)
    _arrive(gateway, clock, raw_mail(message_id="<first@magazin.ro>"))
    _arrive(
        gateway,
        clock,
        raw_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"}),
    )
    first, held = (r for r in caplog.records if r.name == MAIL_LOGGER)
    assert first.mail == {  # type: ignore[attr-defined]
        "message_id": "first@magazin.ro",
        "ticket": 1,
        "outcome": "ticket_created",
        "verdict": "ok",
        "reason": None,
        "raw_id": 1,
        "source": "pipe",
        "ms": 250,
    }
    assert held.mail["outcome"] == "suspended"  # type: ignore[attr-defined]
    assert held.mail["verdict"] == "auto_reply"  # type: ignore[attr-defined]
    assert held.mail["ticket"] is None  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(first))
    assert line["level"] == "info" and line["logger"] == MAIL_LOGGER
    assert line["ticket"] == 1 and line["ms"] == 250
    assert "ticket #1" in line["msg"]


def test_json_format_applies_to_every_handler() -> None:
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    before = {h: h.formatter for h in root.handlers}
    try:
        configure_logging(LogSettings(format="json"))
        assert isinstance(handler.formatter, JsonFormatter)
    finally:
        root.removeHandler(handler)
        for other, formatter in before.items():
            other.setFormatter(formatter)


@pytest.mark.slow
def test_json_mail_lines_from_the_command_line(tmp_path: Path) -> None:
    """The real command: [log] format = "json"; ``ingest -v`` logs the mail's line (``serve``
    always does, unless ``[log] mail_lines = false``)."""
    config = tmp_path / "mailgate.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path}/mailgate.db"\nraw = "{tmp_path}/raw"\n'
        f'attachments = "{tmp_path}/att"\n[outbound]\ntransport = "maildir:{tmp_path}/out"\n'
        '[log]\nformat = "json"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--config", str(config), "-v", "ingest"],
        input=raw_mail(message_id="<piped@magazin.ro>"),
        cwd=REPO,
        capture_output=True,
        timeout=60,
        check=True,
    )
    lines = [json.loads(line) for line in result.stderr.decode().splitlines() if line]
    [mail] = [line for line in lines if line["logger"] == MAIL_LOGGER]
    assert mail["message_id"] == "piped@magazin.ro" and mail["outcome"] == "ticket_created"
