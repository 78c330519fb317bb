"""Decision records are written exactly once with their effects: kill -9 the orders service (a
state machine) and the payments service (a policy) mid-load, restart them, and every order of the
run has each of its decisions once in the committed log, ending where its order ended."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from choreograph import AvroSerde
from choreograph.governance.contracts_bound import DECISIONS_TOPIC, model
from choreograph.testing.servers import Servers
from tests.reliability.choreography import (
    committed_records,
    env_of,
    reference_choreography,
    require_local_stack,
    restart,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]


def test_kill_9_loses_and_doubles_no_decision(servers: Servers, tmp_path: Path) -> None:
    require_local_stack(servers)
    with reference_choreography(servers, tmp_path, orders=60, seed=9) as run:
        loader = run.place(run.orders, rate=12)
        for team in ("orders", "payments"):
            time.sleep(1.5)  # mid-load: each is busy with records it has not committed yet
            env = env_of(servers, tmp_path / team)
            restart(run.fleet, team, env, kill=True)
        loader.join(120)
        statuses = run.outcomes(seconds=240)
        run.assert_as_planned(statuses)
        run.assert_exactly_once()

    serde = AvroSerde(servers.registry_url)
    reader = model("dev.choreograph.DecisionRecord")
    by_order: dict[str, list[dict[str, object]]] = defaultdict(list)
    ids: Counter[str] = Counter()
    for record in committed_records(servers.bootstrap, DECISIONS_TOPIC):
        key = (record.key or b"").decode(errors="replace")
        if f"-{run.run}-" not in key:
            continue
        decision = serde.deserialize(record.value, reader).event.to_avro()  # type: ignore[union-attr]
        by_order[key].append(decision)
        ids[str(decision["decision_id"])] += 1
    assert not [i for i, n in ids.items() if n > 1], "a decision record was written twice"
    for planned in run.orders:
        decided = by_order[planned.order_id]
        machine = [(d["from_state"], d["to_state"]) for d in decided if d["name"] == "order"]
        assert len(machine) == len(set(machine)), (planned.order_id, machine)  # none doubled
        end = "completed" if planned.kind == "ok" else "cancelled"
        assert machine and machine[-1][1] == end, (planned.order_id, planned.kind, machine)
        policy = [d for d in decided if d["name"] == "payments" and d["kind"] == "policy"]
        assert len(policy) == 1, (planned.order_id, policy)  # the card limit, once per order
        [rule] = policy[0]["rules"]  # type: ignore[misc]
        assert rule["rule"] == "payments.card-limit"
        assert rule["result"] == ("false" if planned.kind == "declined" else "true")
