"""The file of removed participants: written when it changes, read again by a listener when it changed."""

from __future__ import annotations

from pathlib import Path

from gateway.revoked import FILE, Revoked, publish


def test_ids_are_written_once_and_read_again_when_they_change(tmp_path: Path) -> None:
    revoked = Revoked(tmp_path, every=0)
    assert 7 not in revoked, "no file: nothing revoked"
    assert publish(tmp_path, [9, 7, 7]) is True
    assert (tmp_path / FILE).read_text() == "7\n9\n"
    assert publish(tmp_path, [7, 9]) is False, "the same ids: not written again"
    assert 7 in revoked and 9 in revoked and 8 not in revoked
    publish(tmp_path, [8])
    assert 8 in revoked and 7 not in revoked
    assert list(tmp_path.iterdir()) == [tmp_path / FILE], "no temporary file left"


def test_a_listener_looks_at_the_file_at_most_once_in_a_while(tmp_path: Path) -> None:
    revoked = Revoked(tmp_path, every=3600)
    assert 5 not in revoked
    publish(tmp_path, [5])
    assert 5 not in revoked, "read again only after its interval"
