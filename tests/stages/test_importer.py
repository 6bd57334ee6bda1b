"""Stage 1 from files: the mbox reader gives exactly what the standard library's gives."""

from __future__ import annotations

import mailbox
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from mailgate_testing import raw_mail

from mailgate.sources.importer import count_mails, iter_mails, mbox_messages

# Lines an mbox holds: "From " separators (and "From" look-alikes), blank lines with
# either ending, quoted ">From " lines, ordinary text, and a last line without an ending.
_LINES = st.lists(
    st.sampled_from(
        [
            b"From a@b.example Mon Nov 23 10:00:00 2026\n",
            b"From \n",
            b"From:header@example\n",
            b">From quoted\n",
            b"\n",
            b"\r\n",
            b"Subject: x\n",
            b"text line\r\n",
            b" \n",
            b"no ending",
        ]
    ),
    max_size=40,
)


def _as_stdlib_reads(path: Path) -> list[bytes]:
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        return [box.get_bytes(key) for key in sorted(box.keys())]
    finally:
        box.close()


@settings(max_examples=300, deadline=None)
@given(_LINES)
def test_mbox_messages_reads_as_the_standard_library_does(lines: list[bytes]) -> None:
    content = b"From first@example Mon Nov 23 10:00:00 2026\n" + b"".join(lines)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "box.mbox"
        path.write_bytes(content)
        expected = _as_stdlib_reads(path)
        assert list(mbox_messages(path)) == expected
        assert count_mails(path) == len(expected)
        assert [raw for _, raw in iter_mails(path)] == expected


def test_an_mbox_written_by_the_standard_library_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "box.mbox"
    box = mailbox.mbox(path)
    sent = [
        b"From: ana@shop.example\nSubject: one\n\nFrom the start, a line the writer quotes.\n",
        b"From: ion@shop.example\nSubject: two\n\nsecond\n\n\n",
        b"Subject: three\n\nno blank line at the end",
    ]
    for raw in sent:
        box.add(raw)
    box.close()
    assert list(mbox_messages(path)) == _as_stdlib_reads(path)
    assert [label for label, _ in iter_mails(path)] == [f"{path}:{n}" for n in range(3)]
    assert count_mails(path) == 3


def test_a_file_that_is_no_mbox_is_one_mail(tmp_path: Path) -> None:
    path = tmp_path / "one.eml"
    path.write_bytes(b"Subject: hi\n\nFrom here on, text\n")
    assert count_mails(path) == 1
    assert list(iter_mails(path)) == [(str(path), path.read_bytes())]


def test_a_maildir_mail_gone_while_the_import_ran_is_reported(tmp_path: Path) -> None:
    maildir = mailbox.Maildir(tmp_path / "md")
    keys = [maildir.add(raw_mail(subject=f"maildir {i}")) for i in range(3)]
    found: list[tuple[str, str]] = []
    mails = iter_mails(tmp_path / "md", lambda label, why: found.append((label, why)))
    first = next(mails)
    for key in keys:  # another reader (the MTA, a mail client) takes the rest away
        if not first[0].endswith(key):
            maildir.remove(key)
    assert list(mails) == []
    assert sorted(found) == sorted(
        (f"{tmp_path / 'md'}:{key}", "no longer in the maildir")
        for key in keys
        if not first[0].endswith(key)
    )
