"""Decision records: evidence of every decision about an instance, written in the same
transaction as the decision's effect (they are outputs of the same handling), so a decision that
took effect has its record and a record never describes a decision that was rolled back.

A record names the instance, the machine or process and its version, the states before and
after, the trigger, every rule evaluated on the way (with the fields it read, PII masked), who
decided and when. `choreograph audit show` prints an instance's records in order."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from choreograph.governance.contracts_bound import DECISIONS_TOPIC, model

if TYPE_CHECKING:
    from choreograph.contracts.envelope import Envelope
    from choreograph.runtime.context import Context

Subject = Literal["machine", "process", "handler"]
Kind = Literal[
    "transition",
    "timeout",
    "compensation",
    "settle",
    "retry",
    "redrive",
    "escalation",
    "operator-action",
    "migration",
    "approval",
    "policy",
]
ActorKind = Literal["service", "operator", "approver"]


@dataclass(frozen=True)
class RuleEvaluation:
    """One rule evaluated: a policy (with its version) or a guard in code ("code")."""

    rule: str
    version: str
    result: Any
    inputs: dict[str, Any] = field(default_factory=dict)  # field path -> value (masked if PII)

    def to_avro(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "version": self.version,
            "result": json.dumps(self.result, default=str),
            "inputs": {k: json.dumps(v, default=str) for k, v in sorted(self.inputs.items())},
        }


DECISION_IDS = uuid.UUID("6f1c2a52-3d0e-4f55-9a4e-2b7f0c9d8e11")


def record_decision(
    ctx: Context,
    *,
    subject: Subject,
    name: str,
    version: int,
    kind: Kind,
    from_state: str | None = None,
    to_state: str | None = None,
    trigger: str | None = None,
    instance: str | None = None,
    actor: str | None = None,
    actor_kind: ActorKind = "service",
    reason: str = "",
    rules: list[RuleEvaluation] | None = None,
) -> Envelope:
    """Emit a DecisionRecord from `ctx` (and return its envelope: what it decided is caused by
    it), with the rules evaluated in this handling so far (and
    `rules`). `trigger`: the event type or timer that caused it; by default the event in hand."""
    envelope = ctx.envelope
    from_timer = envelope is None or envelope.type == "choreograph.timer"
    cause = "timer" if envelope is None or from_timer else envelope.type
    evaluated = [*ctx.take_evaluations(), *(rules or [])]
    # The same handling of the same record decides the same: a retry, a replay or a restore
    # writes a record with the same id, so readers can recognise it.
    seed = [envelope.id if envelope else "", subject, name, instance or ctx.key, kind,
            from_state or "", to_state or "", trigger or "", str(ctx.decisions)]  # fmt: skip
    ctx.decisions += 1
    record = model("dev.choreograph.DecisionRecord").from_avro(
        {
            "decision_id": str(uuid.uuid5(DECISION_IDS, "|".join(seed))),
            "correlation_id": envelope.correlation_id if envelope is not None else ctx.key,
            "instance": instance or ctx.key,
            "subject": subject,
            "name": name,
            "version": version,
            "kind": kind,
            "from_state": from_state,
            "to_state": to_state,
            "trigger_event_id": None if from_timer or envelope is None else envelope.id,
            "trigger_event_type": trigger or cause,
            "rules": [r.to_avro() for r in evaluated],
            "actor": actor or ctx.service,
            "actor_kind": actor_kind,
            "actor_instance": ctx.instance_id if actor_kind == "service" else None,
            "reason": reason,
            "at": ctx.now,
        }
    )
    return ctx.emit(record, key=ctx.key, topic=DECISIONS_TOPIC)
