"""ACLs derived from a service's topology: what it reads, writes, owns, and nothing else."""

from __future__ import annotations

import json

import pytest

from choreograph.cli.main import main
from choreograph.governance.acls import derive, kafka_acls_commands
from choreograph_examples.orders.service import build as orders


def allowed(principal: str = "User:orders") -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for acl in derive(orders(), principal if principal != "User:orders" else None):
        assert acl.principal == principal and acl.permission == "Allow"
        found.setdefault((acl.resource_type, acl.name), set()).add(acl.operation)
    return found


def test_a_service_may_read_its_inputs_write_its_outputs_and_own_its_state() -> None:
    acls = allowed()
    assert acls[("topic", "payments.events")] == {"Read", "Describe"}  # an input, never written
    assert acls[("topic", "orders.events")] == {"Read", "Describe", "Write", "DescribeConfigs"}
    assert acls[("topic", "choreograph.decisions")] == {"Write", "Describe", "DescribeConfigs"}
    assert acls[("topic", "choreograph.approvals")] >= {"Read", "Write"}  # asks and hears
    changelog = acls[("topic", "orders.machine.order.changelog")]
    assert changelog == {"Read", "Write", "Describe", "DescribeConfigs", "Create"}
    assert acls[("topic", "orders.dlq")] == {"Write", "Describe", "DescribeConfigs", "Create"}
    assert acls[("group", "orders")] == {"Read", "Describe"}
    assert acls[("transactional-id", "orders-")] == {"Write", "Describe"}
    written = {n for (kind, n), ops in acls.items() if kind == "topic" and "Write" in ops}
    changelogs = {n for n in written if n.startswith("orders.") and n.endswith(".changelog")}
    assert written == {"orders.events", "choreograph.decisions", "choreograph.approvals",
                       "orders.dlq", *changelogs}  # fmt: skip
    assert ("topic", "inventory.inventory.changelog") not in acls  # another team's state


def test_renderings_name_the_same_acls(capsys: pytest.CaptureFixture[str]) -> None:
    commands = kafka_acls_commands(derive(orders()), "kafka:9092").splitlines()
    assert (
        "kafka-acls.sh --bootstrap-server kafka:9092 --add --allow-principal User:orders "
        "--operation Describe --operation Write --transactional-id orders- "
        "--resource-pattern-type prefixed"
    ) in commands
    assert main(["acls", "choreograph_examples.orders.service:build", "--format", "json",
                 "--principal", "User:svc-orders"]) == 0  # fmt: skip
    rendered = json.loads(capsys.readouterr().out)
    assert len(rendered) == len(derive(orders())) and {r["principal"] for r in rendered} == {
        "User:svc-orders"
    }
    assert main(["acls", "choreograph_examples.orders.service:nothing"]) == 2
    assert "nothing" in capsys.readouterr().err
