"""Findings of `choreograph schemas` commands, and their text, JSON and GitHub renderings."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass

SEVERITIES = ("error", "warning", "notice")


@dataclass(frozen=True)
class Diagnostic:
    path: str
    line: int
    col: int
    rule: str
    severity: str  # error | warning | notice
    message: str
    fix: str = ""

    def text(self) -> str:
        fix = f"\n    fix: {self.fix}" if self.fix else ""
        return (
            f"{self.path}:{self.line}:{self.col}: {self.severity} [{self.rule}] {self.message}{fix}"
        )

    def github(self) -> str:
        level = {"error": "error", "warning": "warning"}.get(self.severity, "notice")
        body = self.message + (f" Fix: {self.fix}" if self.fix else "")
        body = body.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return (
            f"::{level} file={self.path},line={self.line},col={self.col},title={self.rule}::{body}"
        )


class LocatedError(Exception):
    """Input that cannot be read, with where: a file, line and column."""

    def __init__(self, path: str, line: int, col: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{col}: {message}")
        self.path, self.line, self.col, self.message = path, line, col, message

    def diagnostic(self) -> Diagnostic:
        return Diagnostic(self.path, self.line, self.col, "unreadable", "error", self.message)


def render(diagnostics: Iterable[Diagnostic], fmt: str) -> str:
    items = sorted(diagnostics, key=lambda d: (d.path, d.line, d.col, d.rule))
    if fmt == "json":
        return json.dumps([asdict(d) for d in items], indent=2)
    if fmt == "github":
        return "\n".join(d.github() for d in items)
    return "\n".join(d.text() for d in items)
