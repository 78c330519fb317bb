"""Who may read traces and who may act on instances: bearer tokens with a role each.

Roles: `viewer` reads traces; `operator` also retries steps, compensates and resolves;
`approver` reads and grants or denies approval requests (and nothing else: who operates a
workflow does not approve its decisions, and the reverse). The token
file holds SHA-256 digests, never tokens, so it can live in a Kubernetes secret or a repo:

    tokens:
      - {name: alice, role: operator, sha256: "9f86d081...", expires: 2027-03-31T00:00:00Z}
      - {name: dashboards, role: viewer, sha256: "60303ae2..."}

`expires` is optional. `teams` scopes an operator or approver to the processes those teams own
(a definition's `owners.technical` and `owners.business`): without it a token acts for every
team, as a platform's own on-call does. Viewers see every process unless reads are scoped
(`scoped_reads`, `saga-tracker run --scoped-reads`): then `teams` scopes reading too, and a
principal reads only the processes its teams own.

    tokens:
      - {name: carol, role: operator, sha256: "...", teams: [team-payments]}

 The file is read again when it changes, so a token removed from it stops
working at once, without a restart; a file that becomes unreadable admits nobody until fixed.
`saga-tracker token NAME --role operator` prints a new token and its line for the file.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Role = Literal["viewer", "operator", "approver"]
RIGHTS: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "act"}),
    "approver": frozenset({"read", "approve"}),
}


class AccessFileError(Exception):
    """The token file cannot be used; says why (the tracker does not start without it)."""


class _Token(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    expires: datetime | None = None
    teams: list[str] | None = Field(None, min_length=1)


class _TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[_Token]


log = logging.getLogger("saga_tracker.access")


Grant = tuple[Role, frozenset[str] | None]  # a role, for these teams (None: every team)


@dataclass(frozen=True)
class Principal:
    """Who asks: a token's holder (one role) or a signed-in person (a role per group)."""

    name: str
    role: Role
    expires: datetime | None = None
    teams: frozenset[str] | None = None  # whose processes it acts on; None: every team's
    also: tuple[Grant, ...] = ()  # further roles, from an identity provider's groups

    @property
    def grants(self) -> tuple[Grant, ...]:
        return ((self.role, self.teams), *self.also)

    def may(self, right: str) -> bool:
        return any(right in RIGHTS[role] for role, _ in self.grants)

    def serves(self, owners: Iterable[str], right: str | None = None) -> bool:
        """Whether it may use `right` (any, if None) on a process owned by `owners`."""
        wanted = set(owners)
        return any(
            (right is None or right in RIGHTS[role]) and (teams is None or bool(teams & wanted))
            for role, teams in self.grants
        )

    def teams_for(self, right: str) -> set[str] | None:
        """The teams it may use `right` for; None when every team."""
        found: set[str] = set()
        for role, teams in self.grants:
            if right in RIGHTS[role]:
                if teams is None:
                    return None
                found |= teams
        return found


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Access:
    """Bearer-token checks. Without any token configured nobody may act, and reading is open
    only when `open_reads` is set (a tracker on a private network behind its own proxy)."""

    def __init__(
        self,
        tokens: dict[str, Principal],
        *,
        open_reads: bool = False,
        scoped_reads: bool = False,
        path: Path | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._by_digest = tokens
        self.open_reads = open_reads
        self.scoped_reads = scoped_reads
        self.path = path
        self.clock = clock
        self._seen = _stamp(path) if path else None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path, *, open_reads: bool = False, scoped_reads: bool = False) -> Access:
        return cls(_read(path), open_reads=open_reads, scoped_reads=scoped_reads, path=path)

    def readable(
        self, principal: Principal | None, owners: dict[str, list[str]]
    ) -> frozenset[str] | None:
        """The processes `principal` may read (None: all). Unscoped, everybody who may read
        reads everything; scoped, only the processes its teams own (`owners`)."""
        if not self.scoped_reads or principal is None:
            return None
        if principal.teams_for("read") is None:
            return None
        return frozenset(p for p, teams in owners.items() if principal.serves(teams, "read"))

    def _current(self) -> dict[str, Principal]:
        """The tokens, read again if the file changed since it was last read."""
        if self.path is None:
            return self._by_digest
        stamp = _stamp(self.path)
        if stamp != self._seen:
            with self._lock:
                if stamp != self._seen:
                    try:
                        self._by_digest = _read(self.path)
                        log.info("token file %s reloaded", self.path)
                    except AccessFileError as err:
                        self._by_digest = {}  # fail closed: nobody, rather than the revoked
                        log.error("token file unusable, no token is accepted: %s", err)
                    self._seen = stamp
        return self._by_digest

    def who(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header, if the token is known
        and not expired. The scheme is case-insensitive (RFC 9110)."""
        scheme, _, credentials = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            return None
        presented = digest(credentials.strip())
        for known, principal in self._current().items():
            if hmac.compare_digest(known, presented):
                if principal.expires is not None and principal.expires <= self.clock():
                    return None
                return principal
        return None

    def allows(self, principal: Principal | None, right: str) -> bool:
        if principal is None:
            return right == "read" and self.open_reads
        return principal.may(right)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def _read(path: Path) -> dict[str, Principal]:
    try:
        raw = yaml.safe_load(path.read_text())
        parsed = _TokenFile.model_validate(raw)
    except (OSError, yaml.YAMLError) as err:
        raise AccessFileError(f"{path}: {err}") from err
    except ValidationError as err:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
        )
        raise AccessFileError(f"{path}: {problems}") from err
    names = [t.name for t in parsed.tokens]
    if len(set(names)) != len(names):
        raise AccessFileError(f"{path}: a token name is listed twice")
    for t in parsed.tokens:
        if t.expires is not None and t.expires.tzinfo is None:
            raise AccessFileError(f"{path}: tokens/{t.name}/expires needs a time zone (Z)")
    return {
        t.sha256: Principal(t.name, t.role, t.expires, frozenset(t.teams) if t.teams else None)
        for t in parsed.tokens
    }
