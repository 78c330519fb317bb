"""The checker's verdict on every corpus case (the registry's verdict is checked in integration)."""

from __future__ import annotations

import pytest

from choreograph.contracts.avro_model import SchemaError, parse_schema
from choreograph.contracts.compatibility import Mode, check_compatibility
from tests.compat_corpus import CASES, Case


def checker_verdict(case: Case) -> tuple[str, set[str]]:
    try:
        schemas = [parse_schema(v) for v in case.versions]
    except SchemaError:
        return "invalid", set()
    *old, new = schemas
    findings = check_compatibility(new, list(enumerate(old, start=1)), Mode(case.mode))
    return ("incompatible" if findings else "compatible"), {f.problem.rule for f in findings}


def test_corpus_is_large_and_covers_every_mode_and_verdict() -> None:
    assert len(CASES) >= 40
    assert {c.mode for c in CASES} == {m.value for m in Mode}
    assert {c.verdict for c in CASES} == {"compatible", "incompatible", "invalid"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_checker_verdict(case: Case) -> None:
    verdict, rules = checker_verdict(case)
    assert verdict == case.verdict
    assert rules == case.rules
