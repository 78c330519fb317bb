"""Who may read traces and who may act on instances: bearer tokens with a role each.

Roles: `viewer` reads traces; `operator` also retries steps, compensates and resolves. The token
file holds SHA-256 digests, never tokens, so it can live in a Kubernetes secret or a repo:

    tokens:
      - {name: alice, role: operator, sha256: "9f86d081..."}
      - {name: dashboards, role: viewer, sha256: "60303ae2..."}

`choreograph tracker token NAME --role operator` prints a new token and its line for the file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

Role = Literal["viewer", "operator"]
RIGHTS: dict[Role, frozenset[str]] = {
    "viewer": frozenset({"read"}),
    "operator": frozenset({"read", "act"}),
}


class AccessFileError(Exception):
    """The token file cannot be used; says why (the tracker does not start without it)."""


class _Token(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    role: Role
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _TokenFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tokens: list[_Token]


@dataclass(frozen=True)
class Principal:
    name: str
    role: Role

    def may(self, right: str) -> bool:
        return right in RIGHTS[self.role]


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


class Access:
    """Bearer-token checks. Without any token configured nobody may act, and reading is open
    only when `open_reads` is set (a tracker on a private network behind its own proxy)."""

    def __init__(self, tokens: dict[str, Principal], *, open_reads: bool = False) -> None:
        self._by_digest = tokens
        self.open_reads = open_reads

    @classmethod
    def load(cls, path: Path, *, open_reads: bool = False) -> Access:
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
        tokens = {t.sha256: Principal(t.name, t.role) for t in parsed.tokens}
        return cls(tokens, open_reads=open_reads)

    def who(self, authorization: str | None) -> Principal | None:
        """The principal of an `Authorization: Bearer <token>` header, if the token is known."""
        if not authorization or not authorization.startswith("Bearer "):
            return None
        presented = digest(authorization.removeprefix("Bearer ").strip())
        for known, principal in self._by_digest.items():
            if hmac.compare_digest(known, presented):
                return principal
        return None

    def allows(self, principal: Principal | None, right: str) -> bool:
        if principal is None:
            return right == "read" and self.open_reads
        return principal.may(right)
