"""A throwaway git repository holding contracts, for CLI tests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from choreograph.cli.main import main

BASE: dict[str, Any] = {
    "type": "record",
    "name": "OrderPlaced",
    "namespace": "com.acme.orders",
    "doc": "An order was placed.",
    "fields": [{"name": "order_id", "type": "string", "doc": "Business key."}],
}


class ContractRepo:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.contracts = root / "schemas" / "avro"
        (self.contracts / "orders").mkdir(parents=True)
        self.git("init", "-q", "-b", "main")
        self.git("config", "user.email", "t@example.com")
        self.git("config", "user.name", "t")

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(self.root), *args], check=True, capture_output=True, text=True
        ).stdout

    def write(
        self, schema: dict[str, Any], name: str = "OrderPlaced", domain: str = "orders"
    ) -> Path:
        path = self.contracts / domain / f"{name}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema, indent=2) + "\n")
        return path

    def policy(self, text: str) -> None:
        (self.contracts / "schemas.yaml").write_text(text)

    def commit(self, message: str = "change") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


def with_fields(*fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {**BASE, "fields": [*BASE["fields"], *fields], **extra}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
