"""Where the tests find their input files.

The public corpus (``shared/corpus``, real mails from other projects) lives beside the
repository, not in it: ``$MAILGATE_CORPUS`` if set, else ``../shared/corpus`` next to this
checkout, else the team's shared copy at ``/work/shared/corpus``.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples" / "eml"
DATA = REPO / "tests" / "data"


def _corpus() -> Path:
    candidates = [
        os.environ.get("MAILGATE_CORPUS"),
        REPO.parent / "shared" / "corpus",
        "/work/shared/corpus",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_dir():
            return Path(candidate)
    return REPO.parent / "shared" / "corpus"


CORPUS = _corpus()
