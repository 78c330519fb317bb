"""Operator actions from the HTTP API to the tracker, each audited.

A request that passes the checks becomes a `dev.choreograph.OperatorAction` on the tracker's
repartition topic, keyed by the instance so it reaches the partition task that owns it, and an
`ACCEPTED` entry on `choreograph.audit`, in one Kafka transaction: no action goes out without its
audit entry. Requests that fail a check are audited too: `REFUSED` at once; `DENIED` and
`INVALID` are handed back to the API, which audits them per client and window (see `throttle`).
The tracker checks again when it applies the action (the instance may have moved on) and audits
`APPLIED` or `REFUSED`.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from choreograph.contracts.event import Event
from choreograph.contracts.publisher import EventPublisher
from choreograph.contracts.serde import AvroSerde
from choreograph.governance.approvals import DECIDED, ApprovalRefused, check_approver
from choreograph.governance.contracts_bound import APPROVALS_TOPIC, model
from choreograph.process.definition import ProcessDefinition
from choreograph.runtime.transactions import Outcome, Transactions
from saga_tracker.access import Principal
from saga_tracker.batches import (
    BATCH_CANCELLED,
    BATCH_REQUESTED,
    BATCHES,
    ENDED_BATCH,
    MAX_RATE,
    chunks_of,
)
from saga_tracker.definitions import Definitions
from saga_tracker.instance import ACTIONS, STEP_ACTIONS, Instance
from saga_tracker.migration import MigrationCheck, check_migration
from saga_tracker.service import ACTION, AUDIT

MAX_BATCH = 100_000  # instances one batch may act on: narrow the query for more
DEFAULT_RATE = 50  # actions per second a batch is dispatched at unless it says
SAMPLE = 10  # instances shown before a batch is run
MIGRATE = "migrate"  # a batch action alone: move instances to a newer definition version
BATCH_ACTIONS: tuple[str, ...] = (*ACTIONS, MIGRATE)
LISTED = 1000  # instances a migration's plan lists with their verdicts


class Unavailable(Exception):
    """The action could not be recorded now (the broker is away); nothing was sent."""


@dataclass(frozen=True)
class Failure:
    """A request that failed a check of who asks or what was sent: audited by the caller."""

    fields: dict[str, Any]
    outcome: str  # DENIED or INVALID
    detail: str


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]
    failure: Failure | None = None


def audit_fields(
    principal: Principal | None, correlation_id: str, action: str = "", step: Any = None
) -> dict[str, Any]:
    return {
        "action": action,
        "target": correlation_id,
        "step": step if isinstance(step, str) else None,
        "actor": principal.name if principal else "anonymous",
        "role": principal.role if principal else None,
    }


NEEDED = {"act": "the operator role is needed", "approve": "the approver role is needed"}


def owning_teams(definition: ProcessDefinition) -> list[str]:
    """The teams a process belongs to: who maintains it and who answers for its outcome."""
    return list(dict.fromkeys([definition.owners.technical, definition.owners.business]))


def refuse_other_team(
    principal: Principal, definition: ProcessDefinition, audit: dict[str, Any], right: str = "act"
) -> Reply | None:
    """403 (audited DENIED) for a principal whose `right` is scoped to teams that do not own
    the process."""
    owners = owning_teams(definition)
    if principal.serves(owners, right):
        return None
    teams = ", ".join(sorted(principal.teams_for(right) or ()))
    who = "operators" if right == "act" else "approvers"
    error = (
        f"{principal.name} {'acts' if right == 'act' else 'approves'} for {teams}; "
        f"{definition.name} is owned by {' and '.join(owners)}: one of their {who} can do this"
    )
    return Reply(403, {"error": error}, Failure(audit, "DENIED", f"owned by {owners[0]}"))


def refuse_without(
    principal: Principal | None, right: str, audit: dict[str, Any], error: str
) -> Reply | None:
    """The reply (401 or 403, audited DENIED) to a request whose principal lacks `right`; None
    when it has it. `error`: what the caller is told on a 403."""
    if principal is None:
        why = "no valid bearer token"
        return Reply(
            401, {"error": "a valid bearer token is needed"}, Failure(audit, "DENIED", why)
        )
    if not principal.may(right):
        return Reply(403, {"error": error}, Failure(audit, "DENIED", NEEDED[right]))
    return None


class ActionDesk:
    def __init__(
        self,
        client: dict[str, Any],
        serde: AvroSerde,
        definitions: Definitions,
        models: dict[str, type[Event]],
        *,
        repartition: str,
        transactional_id: str,
        source: str = "saga-tracker-api",
        batches: str = BATCHES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`clock`: now, as the tracker's deadlines are judged (a migration's check)."""
        self.txn = Transactions(
            {**client, "transactional.id": transactional_id, "enable.idempotence": True},
            name=source,
        )
        self.serde = serde
        self.definitions = definitions
        self.models = models
        self.repartition = repartition
        self.batches = batches
        self.source = source
        self.clock = clock
        self._lock = threading.Lock()
        self._decided: set[str] = set()  # approvals answered here, before the tracker saw it

    def close(self) -> None:
        self.txn.close(10)

    def request(
        self,
        principal: Principal | None,
        correlation_id: str,
        body: Any,
        instance: Instance | None,
    ) -> Reply:
        """Check one request and, if it passes, send it on; every outcome is audited. While the
        broker is away nothing can be audited, so nothing is done: raises `Unavailable`."""
        fields = body if isinstance(body, dict) else {}
        action = str(fields.get("action", ""))
        step = fields.get("step")
        reason = fields.get("reason")
        actor = principal.name if principal else "anonymous"
        audit = audit_fields(principal, correlation_id, action, step)
        denied = refuse_without(
            principal, "act", audit, f"{actor} may read traces but not act on them"
        )
        if denied is not None:
            return denied
        problem = _invalid(fields, action, step, reason)
        if problem:
            return Reply(400, {"error": problem}, Failure(audit, "INVALID", problem))
        if instance is None:
            self._audit(audit, "REFUSED", "no such instance")
            return Reply(404, {"error": f"no instance {correlation_id}"})
        rules = self.definitions.pinned(instance.process, instance.version)
        assert principal is not None  # refuse_without let it through
        other = refuse_other_team(principal, rules.definition, audit) if rules else None
        if other is not None:
            return other
        refused = (
            rules.refusal(instance, action, step)
            if rules
            else f"definition {instance.process} v{instance.version} is no longer loaded"
        )
        if refused:
            self._audit(audit, "REFUSED", refused)
            return Reply(409, {"error": refused})
        action_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        command = self.models[ACTION].from_avro(
            {
                "action_id": action_id,
                "action": action.upper(),
                "correlation_id": correlation_id,
                "process": instance.process,
                "step": step,
                "actor": actor,
                "reason": reason,
                "requested_at": now,
            }
        )
        with self._transaction() as publisher:
            publisher.publish(
                command, correlation_id, topic=self.repartition, correlation_id=correlation_id
            )
            self._publish_audit(publisher, audit, "ACCEPTED", str(reason), action_id, now)
        return Reply(202, {"action_id": action_id, "status": "accepted"})

    def decide(
        self,
        principal: Principal | None,
        approval_id: str,
        body: Any,
        request: dict[str, Any] | None,
        instance: Instance | None = None,
    ) -> Reply:
        """An approver grants or denies approval request `approval_id` (`request`: as the
        tracker keeps it, None if unknown; `instance`: the process instance it belongs to, whose
        owners an approver scoped to teams must be among). Passing every check, the answer goes
        out as ApprovalDecided to the waiting instance, with its ACCEPTED audit entry, in one
        transaction; every other outcome is audited too."""
        fields = body if isinstance(body, dict) else {}
        decision = str(fields.get("decision", ""))
        reason = fields.get("reason")
        actor = principal.name if principal else "anonymous"
        target = str((request or {}).get("correlation_id") or approval_id)
        audit = audit_fields(principal, target, decision or "approval")
        audit["step"] = (request or {}).get("state")
        role = principal.role if principal else None
        denied = refuse_without(
            principal, "approve", audit, f"{actor} may not decide approvals (role {role})"
        )
        if denied is not None:
            return denied
        if decision not in ("grant", "deny") or not isinstance(reason, str):
            problem = 'send {"decision": "grant" or "deny", "reason": "..."}'
            return Reply(400, {"error": problem}, Failure(audit, "INVALID", problem))
        if request is None:
            self._audit(audit, "REFUSED", f"no approval request {approval_id}")
            return Reply(404, {"error": f"no approval request {approval_id}"})
        assert principal is not None  # refuse_without let it through
        approving_for = principal.teams_for("approve")
        if approving_for is not None:
            rules = (
                self.definitions.pinned(instance.process, instance.version) if instance else None
            )
            if rules is None:
                error = (
                    f"{principal.name} approves for {', '.join(sorted(approving_for))}, and no "
                    f"tracked process says which team owns approval {approval_id}"
                )
                return Reply(403, {"error": error}, Failure(audit, "DENIED", "owner unknown"))
            other = refuse_other_team(principal, rules.definition, audit, "approve")
            if other is not None:
                return other
        if request.get("status") != "pending" or approval_id in self._decided:
            refused = f"approval {approval_id} is already {request.get('status', 'decided')}"
            if approval_id in self._decided:
                refused = f"approval {approval_id} was already decided here"
            self._audit(audit, "REFUSED", refused)
            return Reply(409, {"error": refused})
        try:
            check_approver(str(request["requested_by"]), actor, reason)
        except ApprovalRefused as err:
            self._audit(audit, "REFUSED", str(err))
            return Reply(403, {"error": str(err)})
        now = datetime.now(UTC)
        answer = model(DECIDED).from_avro(
            {
                "approval_id": approval_id,
                "correlation_id": request["correlation_id"],
                "machine": request["machine"],
                "instance": request["instance"],
                "granted": decision == "grant",
                "approver": actor,
                "reason": reason,
                "decided_at": now,
            }
        )
        with self._transaction() as publisher:
            publisher.publish(answer, str(request["instance"]), topic=APPROVALS_TOPIC,
                              correlation_id=str(request["correlation_id"]))  # fmt: skip
            self._publish_audit(publisher, audit, "ACCEPTED", reason, approval_id, now)
        self._decided.add(approval_id)
        return Reply(202, {"approval_id": approval_id, "status": f"{decision} accepted"})

    def batch(
        self,
        principal: Principal | None,
        body: Any,
        choose: Callable[[int], list[tuple[str, str]]],
        count: Callable[[], dict[str, int]],
        sample: Callable[[int], list[dict[str, Any]]],
        query: str,
        examine: Callable[[str, str], Instance | None] | None = None,
    ) -> Reply:
        """Check a batch request and, unless it is a dry run, send it. `count`: how many
        instances the query chooses, per process; `choose(most)`: their keys, newest first;
        `sample(n)`: n of them, for the dry run; `query`: the filters, as asked; `examine`:
        one instance by correlation id and process (a migration checks each).

        The dry run answers the count per process and a sample, and runs nothing. A run that
        names `expect` is refused when the query now chooses another number (look again).
        Every process chosen must be one the principal acts for, or nothing is sent: the
        refusal names its owners.

        A migration (`"action": "migrate", "to_version": N`, one process) checks every chosen
        instance (`saga_tracker.migration`): its dry run lists each with its verdict and
        reason, and its run acts on the safe ones alone (`expect` counts those); the tracker
        checks each again when the move reaches it."""
        fields = body if isinstance(body, dict) else {}
        action = str(fields.get("action", ""))
        step = fields.get("step")
        reason = fields.get("reason")
        actor = principal.name if principal else "anonymous"
        audit = audit_fields(principal, "batch", f"batch {action}", step)
        denied = refuse_without(principal, "act", audit, f"{actor} may read but not act")
        if denied is not None:
            return denied
        assert principal is not None
        problem = _invalid_batch(fields, action, step, reason)
        if problem:
            return Reply(400, {"error": problem}, Failure(audit, "INVALID", problem))
        per_process = count()
        total = sum(per_process.values())
        for process in sorted(per_process):
            rules = self.definitions.latest.get(process)
            if rules is None:
                continue  # not followed any more: each action is refused by the tracker
            other = refuse_other_team(principal, rules.definition, audit)
            if other is not None:
                return Reply(
                    other.status,
                    {"error": f"{other.body['error']} (narrow the query with process=)"},
                    other.failure,
                )
        rate = int(fields.get("rate_per_s") or DEFAULT_RATE)
        summary = {"count": total, "processes": per_process, "action": action, "step": step,
                   "rate_per_s": rate, "query": query}  # fmt: skip
        if total > MAX_BATCH:
            error = f"the query chooses {total} instances, more than {MAX_BATCH}: narrow it"
            if not fields.get("dry_run", False):
                return Reply(409, {"error": error})
        to_version = fields.get("to_version")
        if action == MIGRATE:
            planned = self.migration_plan(per_process, choose, examine, to_version)
            if isinstance(planned, Reply):
                return planned
            checks, plan = planned
            summary = {**summary, **plan, "to_version": to_version}
            if fields.get("dry_run", False):
                return Reply(200, {**summary, "dry_run": True, "sample": sample(SAMPLE)})
            targets = [(c.correlation_id, c.process) for c in checks if c.safe]
        elif fields.get("dry_run", False):
            return Reply(200, {**summary, "dry_run": True, "sample": sample(SAMPLE)})
        else:
            targets = choose(MAX_BATCH)
        expected = fields.get("expect")
        if expected is not None and int(expected) != len(targets):
            error = (f"the query now chooses {len(targets)} instances, not the {expected} "
                     "shown: run the dry run again and check")  # fmt: skip
            return Reply(409, {"error": error, "count": len(targets)})
        batch_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        chunks = chunks_of(targets)
        with self._transaction() as publisher:
            for number, chunk in enumerate(chunks):
                request = self.models[BATCH_REQUESTED].from_avro(
                    {
                        "batch_id": batch_id,
                        "action": action,
                        "step": step,
                        "reason": reason,
                        "actor": actor,
                        "query": query,
                        "rate_per_s": rate,
                        "total": len(targets),
                        "chunk": number,
                        "chunks": len(chunks),
                        "targets": [{"correlation_id": c, "process": p} for c, p in chunk],
                        "requested_at": now,
                        "to_version": to_version,
                    }
                )
                publisher.publish(request, batch_id, topic=self.batches, correlation_id=batch_id)
            what = f"to v{to_version}, " if action == MIGRATE else ""
            detail = f"{reason} ({what}{len(targets)} instances: {query or 'every instance'})"
            entry = {**audit, "target": batch_id, "batch_id": batch_id}
            self._publish_audit(publisher, entry, "ACCEPTED", detail, batch_id, now)
        return Reply(202, {**summary, "count": len(targets), "batch_id": batch_id,
                           "status": "accepted"})  # fmt: skip

    def migration_plan(
        self,
        per_process: dict[str, int],
        choose: Callable[[int], list[tuple[str, str]]],
        examine: Callable[[str, str], Instance | None] | None,
        to_version: Any,
    ) -> Reply | tuple[list[MigrationCheck], dict[str, Any]]:
        """Every chosen instance checked for a move to `to_version`: the checks, and the plan
        (how many are safe, and each instance's verdict); or the reply refusing the request."""
        if len(per_process) > 1:
            error = (f"a migration moves instances of one process; the query chooses "
                     f"{', '.join(sorted(per_process))}: add process=NAME")  # fmt: skip
            return Reply(400, {"error": error})
        if examine is None:
            return Reply(409, {"error": "migrations need the instances' histories"})
        process = next(iter(per_process), None)
        target = self.definitions.pinned(process, to_version) if process else None
        if process is not None and target is None:
            error = (f"v{to_version} of {process} is not loaded here: release it (add it to "
                     "the definitions) and try again")  # fmt: skip
            return Reply(409, {"error": error})
        now = self.clock()
        checks: list[MigrationCheck] = []
        for correlation_id, name in choose(MAX_BATCH):
            inst = examine(correlation_id, name)
            rules = self.definitions.pinned(name, inst.version) if inst is not None else None
            if inst is None or rules is None or target is None:
                why = "no longer found" if inst is None else f"v{inst.version} is not loaded"
                checks.append(MigrationCheck(correlation_id, name, 0, int(to_version), False, why))
                continue
            checks.append(check_migration(inst, rules, target, now))
        safe = sum(c.safe for c in checks)
        plan = {"count": safe, "chosen": len(checks), "safe": safe,
                "not_safe": len(checks) - safe,
                "instances": [c.to_json() for c in checks[:LISTED]]}  # fmt: skip
        return checks, plan

    def cancel_batch(
        self, principal: Principal | None, batch_id: str, body: Any, batch: dict[str, Any] | None
    ) -> Reply:
        """Stop a batch's dispatch (`batch`: as the runner keeps it, None if unknown)."""
        fields = body if isinstance(body, dict) else {}
        reason = fields.get("reason")
        actor = principal.name if principal else "anonymous"
        audit = {**audit_fields(principal, batch_id, "batch cancel"), "batch_id": batch_id}
        denied = refuse_without(principal, "act", audit, f"{actor} may read but not act")
        if denied is not None:
            return denied
        if not isinstance(reason, str) or not reason.strip():
            problem = 'send {"reason": "..."}: it goes to the audit log'
            return Reply(400, {"error": problem}, Failure(audit, "INVALID", problem))
        if batch is None:
            return Reply(404, {"error": f"no batch {batch_id}"})
        if batch.get("status") in ENDED_BATCH:
            return Reply(409, {"error": f"batch {batch_id} is {batch.get('status')}"})
        now = datetime.now(UTC)
        with self._transaction() as publisher:
            stop = self.models[BATCH_CANCELLED].from_avro(
                {"batch_id": batch_id, "actor": actor, "reason": reason, "at": now}
            )
            publisher.publish(stop, batch_id, topic=self.batches, correlation_id=batch_id)
            self._publish_audit(publisher, audit, "ACCEPTED", reason, batch_id, now)
        return Reply(202, {"batch_id": batch_id, "status": "cancel accepted"})

    def audit(self, audit: dict[str, Any], outcome: str, detail: str) -> None:
        """Record one entry on its own (raises `Unavailable` while the broker is away)."""
        self._audit(audit, outcome, detail)

    def _audit(self, audit: dict[str, Any], outcome: str, detail: str) -> None:
        with self._transaction() as publisher:
            self._publish_audit(publisher, audit, outcome, detail, None, datetime.now(UTC))

    @contextmanager
    def _transaction(self) -> Iterator[EventPublisher]:
        """One Kafka transaction at a time for what the block publishes; aborted on error.
        Raises `Unavailable` when the broker cannot take it now: nothing was published."""
        with self._lock:
            if not self.txn.ready(10):
                raise Unavailable("the broker is unavailable; try again shortly")
            self.txn.begin()
            try:
                yield EventPublisher(self.txn.producer, self.serde, self.source)
            except Exception:
                self.txn.abort(30)
                raise
            outcome = self.txn.commit(30)
            if outcome is not Outcome.COMMITTED:
                raise Unavailable(f"the broker did not confirm the action ({outcome.value})")

    def _publish_audit(
        self,
        publisher: EventPublisher,
        audit: dict[str, Any],
        outcome: str,
        detail: str,
        action_id: str | None,
        now: datetime,
    ) -> None:
        entry = self.models[AUDIT].from_avro(
            {
                **audit,
                "audit_id": str(uuid.uuid4()),
                "action_id": action_id,
                "outcome": outcome,
                "detail": detail,
                "recorded_by": self.source,
                "at": now,
            }
        )
        publisher.publish(entry, audit["target"], correlation_id=audit["target"])


def _invalid(
    fields: dict[str, Any],
    action: str,
    step: Any,
    reason: Any,
    allowed: frozenset[str] = frozenset({"action", "step", "reason", "process"}),
    actions: tuple[str, ...] = ACTIONS,
) -> str | None:
    if not fields:
        return f'send a JSON object: {{"action": "{"|".join(actions)}", "reason": "..."}}'
    if action not in actions:
        return f"action must be one of {', '.join(actions)}"
    if step is not None and not isinstance(step, str):
        return "step must be a string"
    if action in STEP_ACTIONS and not step:
        return f"{action} needs the step to {action}"
    if not isinstance(reason, str) or not reason.strip():
        return "give a reason: it goes to the audit log"
    unknown = set(fields) - allowed
    if unknown:
        return f"unknown fields: {', '.join(sorted(unknown))}"
    return None


def _invalid_batch(fields: dict[str, Any], action: str, step: Any, reason: Any) -> str | None:
    allowed = frozenset(
        {"action", "step", "reason", "rate_per_s", "dry_run", "expect", "query", "to_version"}
    )
    problem = _invalid(fields, action, step, reason, allowed, BATCH_ACTIONS)
    if problem:
        return problem
    to_version = fields.get("to_version")
    if action == MIGRATE and (not isinstance(to_version, int) or to_version < 1):
        return 'a migration names the version to move to: "to_version": N'
    if action != MIGRATE and to_version is not None:
        return "to_version is for migrate alone"
    rate = fields.get("rate_per_s")
    if rate is not None and (not isinstance(rate, int) or not 1 <= rate <= MAX_RATE):
        return f"rate_per_s is a whole number of actions a second, 1 to {MAX_RATE}"
    expected = fields.get("expect")
    if expected is not None and (not isinstance(expected, int) or expected < 0):
        return "expect is the count the dry run showed"
    if not isinstance(fields.get("dry_run", False), bool):
        return "dry_run is true or false"
    return None
