"""Timer deadlines in whole milliseconds, rounded up: a timer never fires early."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from choreograph.runtime.timers import deadline_ms


def test_a_timer_never_fires_before_its_deadline() -> None:
    """A due check at a millisecond boundary cannot fire a timer up to a millisecond early."""
    exact = datetime(2026, 5, 1, 9, 0, 0, 123000, tzinfo=UTC)
    assert deadline_ms(exact) == int(exact.timestamp()) * 1000 + 123
    assert deadline_ms(exact + timedelta(microseconds=1)) == deadline_ms(exact) + 1
    assert deadline_ms(exact + timedelta(microseconds=999)) == deadline_ms(exact) + 1
