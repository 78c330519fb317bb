"""Failed attempts per client: a bounded number of audit entries and a limit per window."""

from __future__ import annotations

from saga_tracker.throttle import Closed, FailedAttempts


def test_anonymous_failures_are_audited_once_then_as_one_entry_per_window() -> None:
    now = [0.0]
    limiter = FailedAttempts(limit=5, window_s=60, clock=lambda: now[0])
    audited_now = [limiter.failed("10.0.0.9", "DENIED") for _ in range(5)]
    assert audited_now == [True, False, False, False, False]
    assert limiter.retry_after("10.0.0.9") == 60  # over the limit: refused, unread
    assert limiter.retry_after("10.0.0.8") == 0  # another client is not affected
    assert limiter.closed() == []  # the window is still open
    now[0] = 61
    assert limiter.closed() == [Closed("10.0.0.9", 60, {"DENIED": 4}, 1)]
    assert limiter.closed() == []  # returned once
    assert limiter.retry_after("10.0.0.9") == 0  # a new window


def test_a_known_token_holder_s_failures_are_each_audited_but_still_limited() -> None:
    now = [0.0]
    limiter = FailedAttempts(limit=3, window_s=10, clock=lambda: now[0])
    assert [limiter.failed("c", "INVALID", anonymous=False) for _ in range(3)] == [True] * 3
    assert limiter.retry_after("c") == 10
    now[0] = 5
    assert limiter.retry_after("c") == 5
    assert limiter.closed(all_windows=True) == [Closed("c", 10, {}, 2)]
