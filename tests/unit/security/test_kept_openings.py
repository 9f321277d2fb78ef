"""``SecretBox(keep=N)``, the API's: an opened secret is kept by its sealed text, at most N of
them, the oldest forgotten first; a text that does not open is never kept; a box that keeps
nothing (the workers') keeps nothing."""

from __future__ import annotations

import pytest

from tasks.errors import SecretUnreadable
from tasks.security.sealing import SecretBox, generate_key


def test_openings_are_kept_up_to_the_bound_and_stay_right() -> None:
    key = generate_key()
    box = SecretBox(key, keep=2)
    sealed = [box.seal(f"secret-{i}") for i in range(3)]
    assert [box.open(s) for s in sealed] == ["secret-0", "secret-1", "secret-2"]
    assert box.kept == 2  # the oldest forgotten
    assert [box.open(s) for s in reversed(sealed)] == ["secret-2", "secret-1", "secret-0"]
    assert box.kept == 2
    assert box.open_json(box.seal_json({"a": 1})) == {"a": 1}


def test_a_text_that_does_not_open_is_refused_every_time_and_never_kept() -> None:
    box = SecretBox(generate_key(), keep=8)
    other = SecretBox(generate_key()).seal("not ours")
    for _ in range(2):
        with pytest.raises(SecretUnreadable):
            box.open(other)
    assert box.kept == 0


def test_a_box_that_keeps_nothing_keeps_nothing() -> None:
    box = SecretBox(generate_key())
    assert box.open(box.seal("x" * 8)) == "x" * 8
    assert box.kept == 0
