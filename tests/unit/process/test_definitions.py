"""Process definitions: the model, durations, YAML positions, and `choreograph processes lint`."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from choreograph.cli.main import main
from choreograph.process.definition import DefinitionError, parse_definition, parse_duration

REPO = Path(__file__).resolve().parents[3]
REFERENCE = (REPO / "processes" / "order-fulfilment.v1.yaml").read_text()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(minutes=90)),
        ("500ms", timedelta(milliseconds=500)),
        ("2d", timedelta(days=2)),
        (90, timedelta(seconds=90)),
    ],
)
def test_durations(text: Any, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("bad", ["15", "m15", "1h 30m", "soon", "15min"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(bad)


def test_reference_definition_parses() -> None:
    d = parse_definition(REFERENCE, "order-fulfilment.v1.yaml").definition
    assert (d.name, d.version, d.deadline) == ("order-fulfilment", 1, timedelta(hours=2))
    assert [s.name for s in d.steps] == ["payment", "reservation", "shipping"]
    assert (
        d.steps[0].compensation
        and d.steps[0].compensation.command == "com.acme.payments.RefundPayment"
    )
    assert "com.acme.inventory.StockReservationFailed" in d.event_types()


def test_invalid_definition_names_the_place(tmp_path: Path) -> None:
    text = REFERENCE.replace("deadline: 15m", "deadline: fifteen minutes")
    with pytest.raises(DefinitionError) as err:
        parse_definition(text, "x.yaml")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "fifteen" in t)
    assert err.value.line == line and "steps.0.deadline" in err.value.message
    with pytest.raises(DefinitionError, match="colour: Extra inputs are not permitted"):
        parse_definition(REFERENCE + "colour: red\n", "x.yaml")


def lint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    text: str,
    name: str = "order-fulfilment.v1.yaml",
) -> tuple[int, list[tuple[str, str]]]:
    folder = tmp_path / "processes"
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    monkeypatch.chdir(REPO)
    code = main(["processes", "lint", "--root", str(folder), "--format", "json"])
    out = capsys.readouterr().out
    return code, [(d["rule"], d["severity"]) for d in json.loads(out or "[]")]


def test_reference_definition_lints_clean(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    assert main(["processes", "lint"]) == 0


def edit(change: Any) -> str:
    raw = yaml.safe_load(REFERENCE)
    change(raw)
    return yaml.safe_dump(raw, sort_keys=False)


def test_a_misspelt_event_gets_a_suggestion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "processes"
    folder.mkdir()
    (folder / "order-fulfilment.v1.yaml").write_text(
        edit(lambda d: d.update(start="com.acme.orders.OrderPlacd"))
    )
    monkeypatch.chdir(REPO)
    assert main(["processes", "lint", "--root", str(folder)]) == 1
    assert "did you mean com.acme.orders.OrderPlaced?" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("change", "rule", "severity"),
    [
        (lambda d: d.update(start="com.acme.orders.OrderTeleported"), "unknown-event", "error"),
        (
            lambda d: d["steps"][1]["fails_on"].append("com.acme.inventory.Nope"),
            "unknown-event",
            "error",
        ),
        (
            lambda d: d["steps"][0]["compensation"].update(command="com.acme.payments.Nope"),
            "unknown-command",
            "error",
        ),
        (
            lambda d: d["steps"][0]["compensation"].update(
                command="com.acme.payments.PaymentFailed"
            ),
            "command-topic",
            "error",
        ),
        (lambda d: d["steps"][2].pop("deadline"), "timeout-without-deadline", "error"),
        (
            lambda d: (d.pop("deadline"), d.update(on_timeout="compensate")),
            "timeout-without-deadline",
            "error",
        ),
        (lambda d: d["steps"][2].update(name="payment"), "duplicate-step", "error"),
        (lambda d: d["steps"][2].update(deadline="3h"), "step-deadline-exceeds-process", "warning"),
        (lambda d: d.update(value_at_risk="currency"), "value-at-risk-field", "error"),
        (
            lambda d: d["steps"][2]["completes_on"].append("com.acme.payments.PaymentAuthorized"),
            "ambiguous-completion",
            "warning",
        ),
        (
            lambda d: (d["steps"][0].pop("compensation"), d["steps"][1].pop("compensation")),
            "nothing-to-compensate",
            "error",
        ),
        (
            lambda d: d["steps"][0]["compensation"]["payload"].pop("reason"),
            "command-payload",
            "error",
        ),
        (
            lambda d: d["steps"][0]["compensation"]["payload"].update(colour="red"),
            "command-payload",
            "error",
        ),
        (
            lambda d: d["steps"][0]["compensation"]["payload"].update(reason="{why}"),
            "command-payload",
            "error",
        ),
    ],
)
def test_each_rule(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    rule: str,
    severity: str,
) -> None:
    code, found = lint(tmp_path, monkeypatch, capsys, edit(change))
    assert (rule, severity) in found
    assert code == (1 if severity == "error" else 0)


def test_file_name_and_duplicate_versions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lint(tmp_path, monkeypatch, capsys, REFERENCE)
    code, found = lint(tmp_path, monkeypatch, capsys, REFERENCE, name="copy.yaml")
    assert code == 1 and ("file-name", "error") in found and ("duplicate-version", "error") in found


def test_unreadable_definition_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, found = lint(tmp_path, monkeypatch, capsys, "name: [unclosed\n")
    assert code == 2 and found == [("unreadable", "error")]


V2 = (REPO / "processes" / "order-fulfilment.v2.yaml").read_text()


def edit_v2(change: Any, text: str = V2) -> str:
    raw = yaml.safe_load(text)
    change(raw)
    return yaml.safe_dump(raw, sort_keys=False)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (
            lambda d: d["steps"][0]["settle"].update(command="com.acme.payments.VoidPaymnt"),
            "unknown-command",
        ),
        (
            lambda d: d["steps"][0]["settle"]["voided_on"].append("com.acme.payments.Nope"),
            "unknown-event",
        ),
        (
            lambda d: d["steps"][0]["settle"]["payload"].update(reason="{why}"),
            "command-payload",
        ),
    ],
)
def test_settle_is_linted_against_the_contracts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    rule: str,
) -> None:
    code, found = lint(
        tmp_path, monkeypatch, capsys, edit_v2(change), name="order-fulfilment.v2.yaml"
    )
    assert (rule, "error") in found and code == 1


def test_settle_without_a_compensation_is_refused(tmp_path: Path) -> None:
    text = edit_v2(lambda d: d["steps"][0].pop("compensation"))
    with pytest.raises(DefinitionError, match="has settle but no compensation"):
        parse_definition(text, "order-fulfilment.v2.yaml")


V3 = (REPO / "processes" / "order-fulfilment.v3.yaml").read_text()


def edit_v3(change: Any) -> str:
    return edit_v2(change, V3)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        (lambda d: d["search_attributes"].update(region="region"), "attribute-field"),
        (lambda d: d["search_attributes"].update(items="lines"), "attribute-field"),
        (
            lambda d: d["search_attributes"].update(
                why={"event": "com.acme.payments.RefundPayment", "field": "reason"}
            ),
            "attribute-event",
        ),
        (
            lambda d: d["steps"][1]["redrive"]["payload"].update(reason="{attributes.region}"),
            "command-payload",
        ),
        (
            lambda d: d["steps"][1]["redrive"].update(command="com.acme.orders.OrderPlaced"),
            "command-topic",
        ),
    ],
)
def test_search_attributes_and_redrive_are_linted_against_the_contracts(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    rule: str,
) -> None:
    code, found = lint(
        tmp_path, monkeypatch, capsys, edit_v3(change), name="order-fulfilment.v3.yaml"
    )
    assert (rule, "error") in found and code == 1


def test_search_attributes_of_any_followed_event_and_their_short_form_are_read() -> None:
    text = edit_v3(
        lambda d: d["search_attributes"].update(
            paid={"event": "com.acme.payments.PaymentAuthorized", "field": "amount"}
        )
    )
    d = parse_definition(text, "order-fulfilment.v3.yaml").definition
    assert d.search_attributes["customer_id"].field == "customer_id"
    assert d.search_attributes["customer_id"].event_or(d.start) == d.start
    assert d.search_attributes["paid"].event == "com.acme.payments.PaymentAuthorized"
    assert d.retention == timedelta(days=30)
    with pytest.raises(DefinitionError, match="search_attributes"):
        parse_definition(edit_v3(lambda d: d["search_attributes"].update(Bad="x")), "x.yaml")
