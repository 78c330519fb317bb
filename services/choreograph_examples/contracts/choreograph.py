"""Event models of the `choreograph` domain, generated from schemas/avro/choreograph by `choreograph schemas codegen`.

Do not edit: change the .avsc files and generate again.
"""
# ruff: noqa
import datetime
import json
import uuid
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import Field

from choreograph.contracts.event import AvroRecord, Boolean, Bytes, Event, Int32, Int64, String


class ApprovalDecided(Event):
    """An approver granted or denied an approval request. On choreograph.approvals, keyed by the waiting instance, so it reaches the partition that asked."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.ApprovalDecided'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.approvals'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ApprovalDecided","namespace":"dev.choreograph","doc":"An approver granted or denied an approval request. On choreograph.approvals, keyed by the waiting instance, so it reaches the partition that asked.","fields":[{"name":"approval_id","type":"string","doc":"The request decided."},{"name":"correlation_id","type":"string","doc":"Process instance the request belongs to."},{"name":"machine","type":"string","doc":"Machine that waits."},{"name":"instance","type":"string","doc":"The waiting machine instance (its business key)."},{"name":"granted","type":"boolean","doc":"Whether it was granted."},{"name":"approver","type":"string","doc":"Identity of the approver (never the requester)."},{"name":"reason","type":"string","doc":"Why, in the approver\'s words."},{"name":"decided_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was decided."}]}')

    approval_id: String = Field(description='The request decided.')
    correlation_id: String = Field(description='Process instance the request belongs to.')
    machine: String = Field(description='Machine that waits.')
    instance: String = Field(description='The waiting machine instance (its business key).')
    granted: Boolean = Field(description='Whether it was granted.')
    approver: String = Field(description='Identity of the approver (never the requester).')
    reason: String = Field(description="Why, in the approver's words.")
    decided_at: datetime.datetime = Field(description='When it was decided.')


class ApprovalRequested(Event):
    """A state machine waits in a state that needs a person's approval. On choreograph.approvals, keyed by the waiting instance; the saga tracker lists it for approvers."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.ApprovalRequested'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.approvals'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ApprovalRequested","namespace":"dev.choreograph","doc":"A state machine waits in a state that needs a person\'s approval. On choreograph.approvals, keyed by the waiting instance; the saga tracker lists it for approvers.","fields":[{"name":"approval_id","type":"string","doc":"Unique id of the request; the decision names it."},{"name":"correlation_id","type":"string","doc":"Process instance the request belongs to."},{"name":"service","type":"string","doc":"Service whose machine waits."},{"name":"machine","type":"string","doc":"Machine that waits."},{"name":"version","type":"int","doc":"Version of the machine."},{"name":"instance","type":"string","doc":"The waiting machine instance (its business key)."},{"name":"state","type":"string","doc":"State that needs the approval."},{"name":"requested_by","type":"string","doc":"Identity of whoever caused the request; they may not approve it."},{"name":"summary","type":"string","default":"","doc":"What is to be approved, for the approver."},{"name":"requested_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was requested."}]}')

    approval_id: String = Field(description='Unique id of the request; the decision names it.')
    correlation_id: String = Field(description='Process instance the request belongs to.')
    service: String = Field(description='Service whose machine waits.')
    machine: String = Field(description='Machine that waits.')
    version: Int32 = Field(description='Version of the machine.')
    instance: String = Field(description='The waiting machine instance (its business key).')
    state: String = Field(description='State that needs the approval.')
    requested_by: String = Field(description='Identity of whoever caused the request; they may not approve it.')
    summary: String = Field(default='', description='What is to be approved, for the approver.')
    requested_at: datetime.datetime = Field(description='When it was requested.')


class AuditOutcome(StrEnum):
    """What became of the request."""
    ACCEPTED = 'ACCEPTED'
    APPLIED = 'APPLIED'
    REFUSED = 'REFUSED'
    DENIED = 'DENIED'
    INVALID = 'INVALID'
    UNKNOWN = 'UNKNOWN'


class AuditEntry(Event):
    """One operator request and what became of it; on choreograph.audit, never deleted."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.AuditEntry'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.audit'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"AuditEntry","namespace":"dev.choreograph","doc":"One operator request and what became of it; on choreograph.audit, never deleted.","fields":[{"name":"audit_id","type":"string","doc":"Unique id of this entry."},{"name":"action_id","type":["null","string"],"default":null,"doc":"Operator action (or approval request) the entry is about, when one was issued."},{"name":"action","type":"string","doc":"The action as asked (retry, compensate, resolve, cancel, pause, resume, redrive, hold, release); grant or deny for an approval; batch <action> for a batch as a whole."},{"name":"target","type":"string","doc":"Process instance (correlation id) acted on, or the batch id for a batch as a whole."},{"name":"step","type":["null","string"],"default":null,"doc":"Step named in the request, if any."},{"name":"actor","type":"string","doc":"Token holder who asked; \'anonymous\' without a valid token."},{"name":"role","type":["null","string"],"default":null,"doc":"Role of the token holder, if known."},{"name":"outcome","type":{"type":"enum","name":"AuditOutcome","doc":"What became of the request.","symbols":["ACCEPTED","APPLIED","REFUSED","DENIED","INVALID","UNKNOWN"],"default":"UNKNOWN"},"doc":"ACCEPTED by the API, APPLIED by the tracker, REFUSED as not applicable, DENIED for want of rights, INVALID as malformed."},{"name":"detail","type":"string","doc":"The reason given, or why it was refused."},{"name":"recorded_by","type":"string","doc":"Service that wrote the entry."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was recorded."},{"name":"batch_id","type":["null","string"],"default":null,"doc":"The batch operation the entry belongs to, if any."}]}')

    audit_id: String = Field(description='Unique id of this entry.')
    action_id: None | String = Field(default=None, description='Operator action (or approval request) the entry is about, when one was issued.')
    action: String = Field(description='The action as asked (retry, compensate, resolve, cancel, pause, resume, redrive, hold, release); grant or deny for an approval; batch <action> for a batch as a whole.')
    target: String = Field(description='Process instance (correlation id) acted on, or the batch id for a batch as a whole.')
    step: None | String = Field(default=None, description='Step named in the request, if any.')
    actor: String = Field(description="Token holder who asked; 'anonymous' without a valid token.")
    role: None | String = Field(default=None, description='Role of the token holder, if known.')
    outcome: AuditOutcome = Field(description='ACCEPTED by the API, APPLIED by the tracker, REFUSED as not applicable, DENIED for want of rights, INVALID as malformed.')
    detail: String = Field(description='The reason given, or why it was refused.')
    recorded_by: String = Field(description='Service that wrote the entry.')
    at: datetime.datetime = Field(description='When it was recorded.')
    batch_id: None | String = Field(default=None, description='The batch operation the entry belongs to, if any.')


class BatchCancelled(Event):
    """An operator stops a batch: what was not dispatched yet is not."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.BatchCancelled'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'saga-tracker.batches'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"BatchCancelled","namespace":"dev.choreograph","doc":"An operator stops a batch: what was not dispatched yet is not.","fields":[{"name":"batch_id","type":"string","doc":"The batch stopped."},{"name":"actor","type":"string","doc":"Who stopped it."},{"name":"reason","type":"string","doc":"Why, in the operator\'s words."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was asked."}]}')

    batch_id: String = Field(description='The batch stopped.')
    actor: String = Field(description='Who stopped it.')
    reason: String = Field(description="Why, in the operator's words.")
    at: datetime.datetime = Field(description='When it was asked.')


class BatchItemDone(Event):
    """The tracker applied or refused one action of a batch; keyed by the batch id, so its runner counts the outcomes."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.BatchItemDone'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'saga-tracker.batches'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"BatchItemDone","namespace":"dev.choreograph","doc":"The tracker applied or refused one action of a batch; keyed by the batch id, so its runner counts the outcomes.","fields":[{"name":"batch_id","type":"string","doc":"The batch."},{"name":"action_id","type":"string","doc":"The action, as dispatched."},{"name":"correlation_id","type":"string","doc":"The instance acted on."},{"name":"process","type":"string","doc":"Its process."},{"name":"applied","type":"boolean","doc":"Applied; false when refused."},{"name":"detail","type":"string","doc":"Why it was refused, or the reason given."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the tracker decided."}]}')

    batch_id: String = Field(description='The batch.')
    action_id: String = Field(description='The action, as dispatched.')
    correlation_id: String = Field(description='The instance acted on.')
    process: String = Field(description='Its process.')
    applied: Boolean = Field(description='Applied; false when refused.')
    detail: String = Field(description='Why it was refused, or the reason given.')
    at: datetime.datetime = Field(description='When the tracker decided.')


class BatchTarget(AvroRecord):
    """One process instance a batch acts on."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.BatchTarget'

    correlation_id: String = Field(description="The instance's correlation id.")
    process: String = Field(description="The instance's process.")


class BatchRequested(Event):
    """An operator runs one action on every instance a query chose, at a bounded rate. Sent in chunks of targets, keyed by the batch id, in one transaction with its audit entry; the tracker's batch runner dispatches the actions."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.BatchRequested'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'saga-tracker.batches'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"BatchRequested","namespace":"dev.choreograph","doc":"An operator runs one action on every instance a query chose, at a bounded rate. Sent in chunks of targets, keyed by the batch id, in one transaction with its audit entry; the tracker\'s batch runner dispatches the actions.","fields":[{"name":"batch_id","type":"string","doc":"Unique id of the batch; every action of it and its audit entries name it."},{"name":"action","type":"string","doc":"The action every instance gets (retry, compensate, resolve, cancel, pause, resume, redrive, hold, release, migrate)."},{"name":"step","type":["null","string"],"default":null,"doc":"Step to retry or redrive, if any."},{"name":"reason","type":"string","doc":"Why, in the operator\'s words."},{"name":"actor","type":"string","doc":"Who asked."},{"name":"query","type":"string","doc":"The filters that chose the instances, as a query string."},{"name":"rate_per_s","type":"int","doc":"Most actions dispatched per second."},{"name":"total","type":"int","doc":"How many instances the batch acts on, in all its chunks."},{"name":"chunk","type":"int","doc":"Which chunk this is, from 0."},{"name":"chunks","type":"int","doc":"How many chunks the batch has."},{"name":"targets","type":{"type":"array","items":{"type":"record","name":"BatchTarget","doc":"One process instance a batch acts on.","fields":[{"name":"correlation_id","type":"string","doc":"The instance\'s correlation id."},{"name":"process","type":"string","doc":"The instance\'s process."}]}},"doc":"This chunk\'s instances, in the order they are acted on."},{"name":"requested_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was asked."},{"name":"to_version","type":["null","int"],"default":null,"doc":"The definition version a migrate batch moves its instances to."}]}')

    batch_id: String = Field(description='Unique id of the batch; every action of it and its audit entries name it.')
    action: String = Field(description='The action every instance gets (retry, compensate, resolve, cancel, pause, resume, redrive, hold, release, migrate).')
    step: None | String = Field(default=None, description='Step to retry or redrive, if any.')
    reason: String = Field(description="Why, in the operator's words.")
    actor: String = Field(description='Who asked.')
    query: String = Field(description='The filters that chose the instances, as a query string.')
    rate_per_s: Int32 = Field(description='Most actions dispatched per second.')
    total: Int32 = Field(description='How many instances the batch acts on, in all its chunks.')
    chunk: Int32 = Field(description='Which chunk this is, from 0.')
    chunks: Int32 = Field(description='How many chunks the batch has.')
    targets: list[BatchTarget] = Field(description="This chunk's instances, in the order they are acted on.")
    requested_at: datetime.datetime = Field(description='When it was asked.')
    to_version: None | Int32 = Field(default=None, description='The definition version a migrate batch moves its instances to.')


class RuleEvaluation(AvroRecord):
    """One rule evaluated on the way to the decision."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.RuleEvaluation'

    rule: String = Field(description="Policy id, or the guard's qualified name for a guard in code.")
    version: String = Field(description="Policy version, or 'code' for a guard in code.")
    result: String = Field(description='What it evaluated to, as JSON text.')
    inputs: dict[str, String] = Field(description='Each field it read, as JSON text; fields tagged pii are masked.')


class DecisionRecord(Event):
    """Evidence of one decision about a process instance: what moved it, on which rules and data, and who decided. On choreograph.decisions, in the same transaction as the decision's effect."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.DecisionRecord'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.decisions'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"DecisionRecord","namespace":"dev.choreograph","doc":"Evidence of one decision about a process instance: what moved it, on which rules and data, and who decided. On choreograph.decisions, in the same transaction as the decision\'s effect.","fields":[{"name":"decision_id","type":"string","doc":"Unique id of this record."},{"name":"correlation_id","type":"string","doc":"Process instance the decision belongs to."},{"name":"instance","type":"string","doc":"The machine instance (its business key), or the process instance (its correlation id)."},{"name":"subject","type":"string","doc":"machine, process (the saga tracker) or handler (a policy a handler evaluated)."},{"name":"name","type":"string","pii":false,"doc":"Machine or process name; for a handler, the service."},{"name":"version","type":"int","doc":"Version of the machine or process definition."},{"name":"kind","type":"string","doc":"transition, timeout, compensation, escalation, operator-action, approval or policy."},{"name":"from_state","type":["null","string"],"default":null,"doc":"State before, when the decision moved one."},{"name":"to_state","type":["null","string"],"default":null,"doc":"State after, when the decision moved one."},{"name":"trigger_event_id","type":["null","string"],"default":null,"doc":"ce_id of the event that triggered it; none for a timer."},{"name":"trigger_event_type","type":"string","doc":"ce_type of that event, or timer:<name> for a timer."},{"name":"rules","type":{"type":"array","items":{"type":"record","name":"RuleEvaluation","doc":"One rule evaluated on the way to the decision.","fields":[{"name":"rule","type":"string","doc":"Policy id, or the guard\'s qualified name for a guard in code."},{"name":"version","type":"string","doc":"Policy version, or \'code\' for a guard in code."},{"name":"result","type":"string","doc":"What it evaluated to, as JSON text."},{"name":"inputs","type":{"type":"map","values":"string"},"doc":"Each field it read, as JSON text; fields tagged pii are masked."}]}},"doc":"Rules evaluated, in order."},{"name":"actor","type":"string","doc":"Who decided: a service, or an operator\'s or approver\'s identity."},{"name":"actor_kind","type":"string","doc":"service, operator or approver."},{"name":"actor_instance","type":["null","string"],"default":null,"doc":"Which running instance of the service (host and process id)."},{"name":"reason","type":"string","default":"","doc":"Why, in words, when there is more to say."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was decided (the service\'s clock)."}]}')

    decision_id: String = Field(description='Unique id of this record.')
    correlation_id: String = Field(description='Process instance the decision belongs to.')
    instance: String = Field(description='The machine instance (its business key), or the process instance (its correlation id).')
    subject: String = Field(description='machine, process (the saga tracker) or handler (a policy a handler evaluated).')
    name: String = Field(description='Machine or process name; for a handler, the service.')
    version: Int32 = Field(description='Version of the machine or process definition.')
    kind: String = Field(description='transition, timeout, compensation, escalation, operator-action, approval or policy.')
    from_state: None | String = Field(default=None, description='State before, when the decision moved one.')
    to_state: None | String = Field(default=None, description='State after, when the decision moved one.')
    trigger_event_id: None | String = Field(default=None, description='ce_id of the event that triggered it; none for a timer.')
    trigger_event_type: String = Field(description='ce_type of that event, or timer:<name> for a timer.')
    rules: list[RuleEvaluation] = Field(description='Rules evaluated, in order.')
    actor: String = Field(description="Who decided: a service, or an operator's or approver's identity.")
    actor_kind: String = Field(description='service, operator or approver.')
    actor_instance: None | String = Field(default=None, description='Which running instance of the service (host and process id).')
    reason: String = Field(default='', description='Why, in words, when there is more to say.')
    at: datetime.datetime = Field(description="When it was decided (the service's clock).")


class IncidentStatus(StrEnum):
    """Raised or resolved."""
    RAISED = 'RAISED'
    RESOLVED = 'RESOLVED'
    UNKNOWN = 'UNKNOWN'


class Incident(Event):
    """A process instance needs attention (raised) or no longer does (resolved); on choreograph.alerts."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.Incident'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.alerts'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"Incident","namespace":"dev.choreograph","doc":"A process instance needs attention (raised) or no longer does (resolved); on choreograph.alerts.","fields":[{"name":"incident_id","type":"string","doc":"Stable across raise and resolve: correlation id and incident name."},{"name":"status","type":{"type":"enum","name":"IncidentStatus","doc":"Raised or resolved.","symbols":["RAISED","RESOLVED","UNKNOWN"],"default":"UNKNOWN"},"doc":"Raised or resolved."},{"name":"severity","type":"string","doc":"warning or critical."},{"name":"process","type":"string","doc":"Process definition name."},{"name":"version","type":"int","doc":"Definition version the instance runs on."},{"name":"step","type":["null","string"],"default":null,"doc":"Step concerned, if any."},{"name":"correlation_id","type":"string","doc":"Process instance."},{"name":"business_key","type":"string","doc":"Entity the process is about."},{"name":"owner","type":"string","doc":"On-call route of the process."},{"name":"summary","type":"string","doc":"What happened, for humans."},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was raised or resolved."}]}')

    incident_id: String = Field(description='Stable across raise and resolve: correlation id and incident name.')
    status: IncidentStatus = Field(description='Raised or resolved.')
    severity: String = Field(description='warning or critical.')
    process: String = Field(description='Process definition name.')
    version: Int32 = Field(description='Definition version the instance runs on.')
    step: None | String = Field(default=None, description='Step concerned, if any.')
    correlation_id: String = Field(description='Process instance.')
    business_key: String = Field(description='Entity the process is about.')
    owner: String = Field(description='On-call route of the process.')
    summary: String = Field(description='What happened, for humans.')
    at: datetime.datetime = Field(description='When it was raised or resolved.')


class OperatorActionKind(StrEnum):
    """What the operator asks for."""
    RETRY = 'RETRY'
    COMPENSATE = 'COMPENSATE'
    RESOLVE = 'RESOLVE'
    UNKNOWN = 'UNKNOWN'
    CANCEL = 'CANCEL'
    PAUSE = 'PAUSE'
    RESUME = 'RESUME'
    REDRIVE = 'REDRIVE'
    HOLD = 'HOLD'
    RELEASE = 'RELEASE'
    MIGRATE = 'MIGRATE'


class OperatorAction(Event):
    """An operator asks the saga tracker to act on a process instance (retry or redrive a step, compensate, resolve, cancel, pause, resume, hold or release it, or move it to a newer definition version), alone or as one of a batch; audited on choreograph.audit."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.OperatorAction'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'saga-tracker.repartition'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"OperatorAction","namespace":"dev.choreograph","doc":"An operator asks the saga tracker to act on a process instance (retry or redrive a step, compensate, resolve, cancel, pause, resume, hold or release it, or move it to a newer definition version), alone or as one of a batch; audited on choreograph.audit.","fields":[{"name":"action_id","type":"string","doc":"Unique id of the request, also in its audit entries."},{"name":"action","type":{"type":"enum","name":"OperatorActionKind","doc":"What the operator asks for.","symbols":["RETRY","COMPENSATE","RESOLVE","UNKNOWN","CANCEL","PAUSE","RESUME","REDRIVE","HOLD","RELEASE","MIGRATE"],"default":"UNKNOWN"},"doc":"What the operator asks for."},{"name":"correlation_id","type":"string","doc":"Process instance acted on."},{"name":"process","type":"string","doc":"Process definition name of the instance."},{"name":"step","type":["null","string"],"default":null,"doc":"Step to retry or redrive, if any."},{"name":"actor","type":"string","doc":"Name of the token holder who asked."},{"name":"reason","type":"string","doc":"Why, in the operator\'s words."},{"name":"requested_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When it was asked."},{"name":"batch_id","type":["null","string"],"default":null,"doc":"The batch operation this action is one of, if any."},{"name":"to_version","type":["null","int"],"default":null,"doc":"The definition version a MIGRATE moves the instance to."}]}')

    action_id: String = Field(description='Unique id of the request, also in its audit entries.')
    action: OperatorActionKind = Field(description='What the operator asks for.')
    correlation_id: String = Field(description='Process instance acted on.')
    process: String = Field(description='Process definition name of the instance.')
    step: None | String = Field(default=None, description='Step to retry or redrive, if any.')
    actor: String = Field(description='Name of the token holder who asked.')
    reason: String = Field(description="Why, in the operator's words.")
    requested_at: datetime.datetime = Field(description='When it was asked.')
    batch_id: None | String = Field(default=None, description='The batch operation this action is one of, if any.')
    to_version: None | Int32 = Field(default=None, description='The definition version a MIGRATE moves the instance to.')


class TraceEntry(AvroRecord):
    """One thing that happened to the instance."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.TraceEntry'

    at: datetime.datetime = Field(description='When the tracker saw it.')
    kind: String = Field(description='event, timeout, compensation, retry, operator or status.')
    event_type: String = Field(description='Event type, for events.')
    event_id: String = Field(description='Event id (ce_id), for events.')
    causation_id: None | String = Field(default=None, description='Id of the event that caused it.')
    source: String = Field(description='Service that published the event.')
    step: None | String = Field(default=None, description='Step concerned.')
    note: String = Field(description='What it meant to the instance.')
    origin: String = Field(default='', description="Where the event's record was read, topic/partition/offset; empty when unknown.")


class StepTrace(AvroRecord):
    """One step of the instance."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.StepTrace'

    step: String = Field(description='Step name.')
    status: String = Field(description='Step status.')
    started_at: None | datetime.datetime = Field(default=None, description='When it started.')
    ended_at: None | datetime.datetime = Field(default=None, description='When it ended.')
    latency_ms: None | Int64 = Field(default=None, description='How long it took, once ended.')


class ProcessTrace(Event):
    """A process instance's trace, published on choreograph.traces whenever its status changes after the start (latest per key on the compacted topic)."""

    __avro_name__: ClassVar[str] = 'dev.choreograph.ProcessTrace'
    __avro_domain__: ClassVar[str] = 'choreograph'
    __avro_topic__: ClassVar[str] = 'choreograph.traces'
    __avro_schema__: ClassVar[dict[str, Any]] = json.loads('{"type":"record","name":"ProcessTrace","namespace":"dev.choreograph","doc":"A process instance\'s trace, published on choreograph.traces whenever its status changes after the start (latest per key on the compacted topic).","fields":[{"name":"correlation_id","type":"string","doc":"Process instance."},{"name":"process","type":"string","doc":"Process definition name."},{"name":"version","type":"int","doc":"Definition version the instance runs on."},{"name":"business_key","type":"string","doc":"Entity the process is about."},{"name":"status","type":"string","doc":"running, completed, failed, compensating, compensated, needs_manual_resolution or resolved."},{"name":"started_at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the start event was tracked."},{"name":"ended_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null,"doc":"When it ended, if it has."},{"name":"failure_reason","type":["null","string"],"default":null,"doc":"Why it failed, if it did."},{"name":"value","type":["null","double"],"default":null,"doc":"Business value of the instance (the definition\'s value-at-risk field)."},{"name":"open_incidents","type":{"type":"array","items":"string"},"doc":"Incidents raised and not yet resolved."},{"name":"steps","type":{"type":"array","items":{"type":"record","name":"StepTrace","doc":"One step of the instance.","fields":[{"name":"step","type":"string","doc":"Step name."},{"name":"status","type":"string","doc":"Step status."},{"name":"started_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null,"doc":"When it started."},{"name":"ended_at","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null,"doc":"When it ended."},{"name":"latency_ms","type":["null","long"],"default":null,"doc":"How long it took, once ended."}]}},"doc":"Steps in definition order."},{"name":"timeline","type":{"type":"array","items":{"type":"record","name":"TraceEntry","doc":"One thing that happened to the instance.","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When the tracker saw it."},{"name":"kind","type":"string","doc":"event, timeout, compensation, retry, operator or status."},{"name":"event_type","type":"string","doc":"Event type, for events."},{"name":"event_id","type":"string","doc":"Event id (ce_id), for events."},{"name":"causation_id","type":["null","string"],"default":null,"doc":"Id of the event that caused it."},{"name":"source","type":"string","doc":"Service that published the event."},{"name":"step","type":["null","string"],"default":null,"doc":"Step concerned."},{"name":"note","type":"string","doc":"What it meant to the instance."},{"name":"origin","type":"string","default":"","doc":"Where the event\'s record was read, topic/partition/offset; empty when unknown."}]}},"doc":"Everything that happened, in order."}]}')

    correlation_id: String = Field(description='Process instance.')
    process: String = Field(description='Process definition name.')
    version: Int32 = Field(description='Definition version the instance runs on.')
    business_key: String = Field(description='Entity the process is about.')
    status: String = Field(description='running, completed, failed, compensating, compensated, needs_manual_resolution or resolved.')
    started_at: datetime.datetime = Field(description='When the start event was tracked.')
    ended_at: None | datetime.datetime = Field(default=None, description='When it ended, if it has.')
    failure_reason: None | String = Field(default=None, description='Why it failed, if it did.')
    value: None | float = Field(default=None, description="Business value of the instance (the definition's value-at-risk field).")
    open_incidents: list[String] = Field(description='Incidents raised and not yet resolved.')
    steps: list[StepTrace] = Field(description='Steps in definition order.')
    timeline: list[TraceEntry] = Field(description='Everything that happened, in order.')


EVENTS: tuple[type[Event], ...] = (ApprovalDecided, ApprovalRequested, AuditEntry, BatchCancelled, BatchItemDone, BatchRequested, DecisionRecord, Incident, OperatorAction, ProcessTrace,)
