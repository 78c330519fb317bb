"""Policies as code: checked against the contract they read (with file:line:col), evaluated by
CEL on real events, named by machine guards and handlers, loud at start-up when wrong."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from choreograph import Context, Service, StateMachine, TestKit
from choreograph.governance.policies import PolicyBook, PolicyError, bind, parse_policy
from choreograph.runtime.errors import TopologyError
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from choreograph_examples.contracts.payments import PaymentAuthorized, PaymentFailed
from choreograph_examples.payments.service import DECLINE_ABOVE, POLICIES

SCHEMA = OrderPlaced.__avro_schema__
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def order(total: str = "20.00", email: str = "ada@example.com", qty: int = 1) -> OrderPlaced:
    return OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        customer_email=email,
        lines=[OrderLine(sku="BOOK-7", quantity=qty)],
        total=Decimal(total),
        placed_at=T0,
    )


def policy_text(expression: str, reads: str = "com.acme.orders.OrderPlaced") -> str:
    return (
        "id: shop.rule\nversion: 3\nowners: [team-shop]\n"
        f"reads: {reads}\nexpression: {expression}\n"
    )


def test_the_card_limit_policy_is_the_limit_the_demo_plans_around() -> None:
    card = PolicyBook.load(POLICIES).bind("payments.card-limit", OrderPlaced, "test")
    assert card.allows(order(str(DECLINE_ABOVE)))[0] is True
    allowed, evaluation = card.allows(order(str(DECLINE_ABOVE + Decimal("0.01"))))
    assert allowed is False
    assert (evaluation.rule, evaluation.version, evaluation.result) == (
        "payments.card-limit",
        "1",
        False,
    )
    assert evaluation.inputs == {"total": "1000.01"}


@pytest.mark.parametrize(
    ("expression", "line", "col", "message"),
    [
        ("event.totl <= 1000.0", 5, 18, "undefined field 'totl'"),
        ("event.total <= 'x'", 5, 25, "no matching overload"),
        ("event.total <= 1000", 5, 25, "applied to '(double, int)'"),  # CEL does not coerce
        ("event.total", 5, 13, "yields double; a policy must yield a bool"),
        ("event.total <=", 5, 27, "Syntax error"),
    ],
)
def test_a_policy_that_does_not_fit_its_contract_fails_with_file_line_and_col(
    expression: str, line: int, col: int, message: str
) -> None:
    source = parse_policy(policy_text(expression), "policies/shop/rule.yaml")
    with pytest.raises(PolicyError) as err:
        bind(source, SCHEMA)
    assert (err.value.path, err.value.line, err.value.col) == ("policies/shop/rule.yaml", line, col)
    assert message in err.value.message


def test_positions_in_a_multi_line_expression_point_into_the_file() -> None:
    text = policy_text("|\n  event.total <= 1000.0 &&\n    event.customer_idd != ''")
    with pytest.raises(PolicyError) as err:
        bind(parse_policy(text, "p.yaml"), SCHEMA)
    assert (err.value.line, err.value.col) == (7, 10)  # the dot before customer_idd
    assert "undefined field 'customer_idd'" in err.value.message
    assert "com.acme.orders.OrderPlaced" in err.value.message  # the contract, by its own name


def test_nested_records_lists_timestamps_and_optional_fields_are_typed() -> None:
    expression = (
        "event.lines.all(l, l.quantity < 3) && event.placed_at < timestamp('2027-01-01T00:00:00Z')"
        " && event.lines[0].sku.startsWith('BOOK')"
    )
    bound = bind(parse_policy(policy_text(f'"{expression}"'), "p.yaml"), SCHEMA)
    assert bound.allows(order(qty=2))[0] is True
    assert bound.allows(order(qty=3))[0] is False
    with pytest.raises(PolicyError, match="undefined field 'skew'"):
        bind(parse_policy(policy_text("event.lines[0].skew == 'x'"), "p.yaml"), SCHEMA)


def test_pii_fields_a_policy_reads_are_masked_in_its_evaluation() -> None:
    expression = "event.customer_email.endsWith('@example.com') && event.total > 1.0"
    bound = bind(parse_policy(policy_text(f'"{expression}"'), "p.yaml"), SCHEMA)
    first = bound.evaluate(order(email="ada@example.com"))
    again = bound.evaluate(order(email="ada@example.com"))
    other = bound.evaluate(order(email="bob@example.com"))
    assert first.result is True and first.inputs["total"] == "20.00"
    masked = first.inputs["customer_email"]
    assert masked.startswith("masked-") and "ada" not in masked
    assert masked == again.inputs["customer_email"] != other.inputs["customer_email"]


def test_malformed_policy_files_say_what_to_change(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="missing 'reads'"):
        parse_policy("id: shop.rule\nversion: 1\nexpression: 'true'\n", "p.yaml")
    with pytest.raises(PolicyError, match=r"unknown key 'expr'") as err:
        parse_policy("id: shop.rule\nversion: 1\nreads: x\nexpr: 'true'\n", "p.yaml")
    assert err.value.line == 4
    with pytest.raises(PolicyError, match=r"id is <domain>\.<name>"):
        parse_policy(policy_text("'true'").replace("shop.rule", "Rule"), "p.yaml")
    (tmp_path / "a.yaml").write_text(policy_text("'true'"))
    (tmp_path / "b.yaml").write_text(policy_text("'false'"))
    with pytest.raises(PolicyError, match="also defined in"):
        PolicyBook.load(tmp_path)


def guarded(policies: Path, guard: str) -> Service:
    service = Service("shop", ["orders.events"], outputs=["payments.events"], policies=policies)
    machine = StateMachine("order", version=4)
    machine.state("open")
    machine.terminal("held", outcome="failure")

    @machine.on(OrderPlaced, source="new", target="open", guard=guard)
    def placed(ctx: Context, event: OrderPlaced, data: dict[str, Any]) -> None:
        ctx.emit(PaymentAuthorized(order_id=ctx.key, payment_id="p", amount=event.total))

    machine.transition(OrderPlaced, source="new", target="held")
    service.add_machine(machine)
    return service


def test_a_machine_guard_names_a_policy_and_its_evaluation_is_in_the_decision() -> None:
    service = guarded(POLICIES, "payments.card-limit")
    kit = TestKit(service, start=T0)
    kit.send(order("2000.00"), key="o-1")
    kit.send(order("20.00"), key="o-2")
    [machine] = service.machines
    assert kit.state(machine, "o-1").state == "held"  # type: ignore[union-attr]
    assert kit.state(machine, "o-2").state == "open"  # type: ignore[union-attr]
    decisions = {d.key: d.event for d in kit.emitted(topic="choreograph.decisions")}
    held, opened = decisions["o-1"], decisions["o-2"]
    assert (held.from_state, held.to_state, held.version) == ("new", "held", 4)  # type: ignore[union-attr]
    [rule] = held.rules  # type: ignore[union-attr]
    assert (rule.rule, rule.version, rule.result, rule.inputs) == (
        "payments.card-limit", "1", "false", {"total": '"2000.00"'}
    )  # fmt: skip
    assert [r.result for r in opened.rules] == ["true"]  # type: ignore[union-attr]


def test_a_mistaken_policy_name_or_event_fails_at_start_up_saying_what_to_change(
    tmp_path: Path,
) -> None:
    with pytest.raises(TopologyError, match=r"names policy 'payments\.card-limt'.*card-limit"):
        guarded(POLICIES, "payments.card-limt")
    (tmp_path / "paid.yaml").write_text(
        policy_text("event.amount > 0.0", reads="com.acme.payments.PaymentAuthorized")
    )
    with pytest.raises(TopologyError, match=r"applies shop\.rule to com\.acme\.orders\.Order"):
        guarded(tmp_path, "shop.rule")
    with pytest.raises(TopologyError, match="has no policies"):
        service = Service("shop", ["orders.events"])
        machine = StateMachine("order")
        machine.transition(OrderPlaced, source="new", target="new", guard="payments.card-limit")
        service.add_machine(machine)


def test_a_handler_evaluates_a_policy_and_records_it_as_a_decision() -> None:
    service = Service("pay", ["orders.events"], outputs=["payments.events"], policies=POLICIES)

    @service.handle(OrderPlaced, policies=["payments.card-limit"])
    def authorise(ctx: Context, event: OrderPlaced) -> None:
        if not ctx.policy("payments.card-limit", event):
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="over the limit"))

    kit = TestKit(service, start=T0)
    placed = kit.send(order("1500.00"), key="o-1", correlation_id="p-1")
    [decision] = kit.events(type(kit.emitted(topic="choreograph.decisions")[0].event))  # type: ignore[arg-type]
    assert (decision.subject, decision.kind, decision.name) == ("handler", "policy", "pay")  # type: ignore[attr-defined]
    assert decision.trigger_event_id == placed.id  # type: ignore[attr-defined]
    assert decision.correlation_id == "p-1"  # type: ignore[attr-defined]
    assert decision.actor_instance == "testkit"  # type: ignore[attr-defined]
    assert [e.envelope.type for e in kit.outputs] == [
        "dev.choreograph.DecisionRecord",
        "com.acme.payments.PaymentFailed",
    ]


def test_policies_lint_reports_each_problem_where_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from choreograph.cli.main import main

    assert main(["policies", "lint", "--root", str(POLICIES), "--schemas", "schemas/avro"]) == 0
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "typo.yaml").write_text(policy_text("event.totl <= 1000.0"))
    (tmp_path / "shop" / "elsewhere.yaml").write_text(
        policy_text("'true'", reads="com.acme.orders.OrderShipped").replace("shop.rule", "shop.b")
    )
    code = main(["policies", "lint", "--root", str(tmp_path), "--schemas", "schemas/avro"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"{tmp_path}/shop/typo.yaml:5:18: error [policy-type] undefined field 'totl'" in out
    assert f"{tmp_path}/shop/elsewhere.yaml:4:8: error [policy-reads]" in out
