"""An installed (non-editable) wheel carries the templates and renders notifications, and
the language model (mailgate/language_model.npz) and detects a language with it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

PROBE = """
import mailgate, sys
from datetime import datetime, timezone
from mailgate.config import OutboundSettings
from mailgate.outbound.compose import Composer, Notification, builtin_templates_dir
assert mailgate.__file__.startswith(sys.argv[1]), mailgate.__file__
assert str(builtin_templates_dir()).startswith(sys.argv[1]), builtin_templates_dir()
composer = Composer(OutboundSettings(), b"secret", lambda: datetime.now(timezone.utc))
mail = composer.render(Notification(kind="ack", ticket_id=7, language="en",
                                    to=("ana@example.com",), context={"ticket": {"id": 7}}))
assert b"[#7]" in mail.raw
from mailgate.language import MODEL_PATH, detect_language
assert str(MODEL_PATH).startswith(sys.argv[1]) and MODEL_PATH.is_file(), MODEL_PATH
assert detect_language("buna ziua, clientii nu pot plati cu cardul")[0] == "ro"
print("ok")
"""


@pytest.mark.slow
def test_wheel_ships_templates_and_the_language_model(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(wheels),
            str(REPO),
        ],
        check=True,
        timeout=600,
    )
    [wheel] = wheels.glob("mailgate-*.whl")
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=600,
    )
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(site)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(site)},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
