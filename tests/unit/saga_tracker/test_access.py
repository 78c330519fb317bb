"""Bearer tokens and roles for the trace and action API, and the token file's errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from saga_tracker.access import Access, AccessFileError, Principal, digest


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tokens.yaml"
    path.write_text(text)
    return path


def test_tokens_map_to_principals_by_digest(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"tokens:\n  - {{name: alice, role: operator, sha256: {digest('a-secret')}}}\n"
        f"  - {{name: dash, role: viewer, sha256: {digest('v-secret')}}}\n",
    )
    access = Access.load(path)
    alice = access.who("Bearer a-secret")
    dash = access.who("Bearer v-secret")
    assert alice == Principal("alice", "operator") and dash == Principal("dash", "viewer")
    assert access.allows(alice, "act") and access.allows(alice, "read")
    assert access.allows(dash, "read") and not access.allows(dash, "act")
    assert access.who("Bearer wrong") is None and access.who("Basic a-secret") is None
    assert access.who(None) is None
    assert not access.allows(None, "read")  # reads need a token unless opened


def test_open_reads_let_anyone_read_but_never_act() -> None:
    access = Access({}, open_reads=True)
    assert access.allows(None, "read") and not access.allows(None, "act")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tokens:\n  - {name: a, role: admin, sha256: " + "a" * 64 + "}\n", "role"),
        ("tokens:\n  - {name: a, role: viewer, sha256: plain-token}\n", "sha256"),
        ("tokens:\n  - {name: a, role: viewer, token: x, sha256: " + "a" * 64 + "}\n", "token"),
        (
            "tokens:\n  - {name: a, role: viewer, sha256: "
            + "a" * 64
            + "}\n  - {name: a, role: operator, sha256: "
            + "b" * 64
            + "}\n",
            "listed twice",
        ),
        ("tokens: [", "tokens.yaml"),
    ],
)
def test_unusable_token_files_are_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    with pytest.raises(AccessFileError, match=message):
        Access.load(write(tmp_path, text))


def test_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(AccessFileError, match="nope"):
        Access.load(tmp_path / "nope.yaml")


def test_the_scheme_is_case_insensitive() -> None:
    access = Access({digest("s"): Principal("a", "viewer")})
    for scheme in ("Bearer", "bearer", "BEARER"):
        assert access.who(f"{scheme} s") == Principal("a", "viewer")
    assert access.who("bearer") is None and access.who("Bearers s") is None


def test_a_token_removed_from_the_file_stops_working_without_a_restart(tmp_path: Path) -> None:
    line = lambda name, secret: f"  - {{name: {name}, role: operator, sha256: {digest(secret)}}}\n"  # noqa: E731
    path = write(tmp_path, "tokens:\n" + line("alice", "a") + line("bob", "b"))
    access = Access.load(path)
    assert access.who("Bearer b") is not None
    path.write_text("tokens:\n" + line("alice", "a"))
    assert access.who("Bearer b") is None and access.who("Bearer a") is not None
    path.write_text("tokens: [")  # broken: nobody gets in until it is fixed
    assert access.who("Bearer a") is None
    path.write_text("tokens:\n" + line("carol", "c"))
    assert access.who("Bearer c") == Principal("carol", "operator")


def test_tokens_may_expire(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    now = [datetime(2026, 6, 1, tzinfo=UTC)]
    path = write(
        tmp_path,
        f"tokens:\n  - {{name: t, role: viewer, sha256: {digest('x')}, "
        "expires: '2026-06-02T00:00:00Z'}\n",
    )
    access = Access(Access.load(path)._current(), path=path, clock=lambda: now[0])
    assert access.who("Bearer x") is not None
    now[0] = datetime(2026, 6, 2, tzinfo=UTC)
    assert access.who("Bearer x") is None


def test_an_expiry_without_a_time_zone_is_refused(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"tokens:\n  - {{name: t, role: viewer, sha256: {digest('x')}, expires: 2026-06-02}}\n",
    )
    with pytest.raises(AccessFileError, match="time zone"):
        Access.load(path)
