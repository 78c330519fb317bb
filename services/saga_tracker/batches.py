"""Batch operations: one action on every instance a query chose, at a bounded rate.

The API resolves the query once, when the operator confirms it (after a dry run showed the count
and a sample), and sends the chosen instances as `BatchRequested` chunks on the batches topic,
keyed by the batch id, in one transaction with its audit entry. The batch runner, a choreograph
service of its own, keeps the chunks and a cursor in its stores and, on a timer, dispatches the
next actions as `OperatorAction`s to the tracker (keyed by instance, like a single action), at
most `rate_per_s` a second. Cursor and dispatched actions are committed in one exactly-once
transaction: a runner killed mid-batch goes on where its last commit stood, so no instance is
acted on twice and none is skipped. The tracker reports each outcome back (`BatchItemDone`), and
the runner counts them: a batch is done when every dispatched action was applied or refused.

A `BatchCancelled` stops the dispatch; what was dispatched already still reports. Each action's
id is `<batch id>/<index>`, and its audit entries (written by the tracker) name the batch.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from choreograph.contracts.event import Event
from choreograph.runtime.context import Context
from choreograph.runtime.errors import ConfigurationError
from choreograph.runtime.service import Service
from choreograph.runtime.topics import create_missing, partition_counts_if_exist

log = logging.getLogger("saga_tracker.batches")
BATCHES = "saga-tracker.batches"
BATCH_REQUESTED = "dev.choreograph.BatchRequested"
BATCH_CANCELLED = "dev.choreograph.BatchCancelled"
BATCH_ITEM_DONE = "dev.choreograph.BatchItemDone"
STATE = "batches"  # by batch id: what it does, where it stands
TARGETS = "batch_targets"  # by "<batch id>/<chunk>": the instances of one chunk
CHUNK = 1000  # instances per BatchRequested record (about 60 KB)
TICK = timedelta(milliseconds=200)
MAX_RATE = 1000  # actions per second a batch may ask for
MAX_REFUSALS_SHOWN = 20
RUNNING = "running"
ENDED_BATCH = frozenset({"done", "cancelled"})


def batches_topic(tracker: str) -> str:
    """The batches topic of a tracker (the default tracker's is `saga-tracker.batches`)."""
    return BATCHES if tracker == "saga-tracker" else f"{tracker}.batches"


def action_id(batch_id: str, index: int) -> str:
    return f"{batch_id}/{index}"


def build_batch_runner(
    models: dict[str, type[Event]],
    *,
    name: str = "saga-tracker-batches",
    topic: str = BATCHES,
    repartition: str,
) -> Service:
    runner = Service(name, [topic], outputs=[repartition], malformed="skip")
    runner.store(STATE)
    runner.store(TARGETS, keyed=False)  # chunks are filed under the batch's own partition
    action_model = models["dev.choreograph.OperatorAction"]

    def requested(ctx: Context, event: Any) -> None:
        batch = ctx.store(STATE).get(event.batch_id)
        if batch is None:
            batch = {
                "batch_id": event.batch_id,
                "action": event.action,
                "step": event.step,
                "reason": event.reason,
                "actor": event.actor,
                "query": event.query,
                "rate_per_s": max(1, min(int(event.rate_per_s), MAX_RATE)),
                "total": event.total,
                "chunks": event.chunks,
                "received": [],
                "status": "receiving",
                "dispatched": 0,
                "applied": 0,
                "refused": 0,
                "refusals": [],
                "requested_at": event.requested_at.isoformat(),
                "started_at": None,
                "ended_at": None,
                "cancelled_by": None,
                "to_version": getattr(event, "to_version", None),  # a migration's
            }
        if event.chunk in batch["received"]:
            return  # the same chunk again: kept once
        targets = [[t.correlation_id, t.process] for t in event.targets]
        ctx.store(TARGETS).put(f"{event.batch_id}/{event.chunk}", targets)
        batch["received"] = sorted([*batch["received"], event.chunk])
        if len(batch["received"]) == batch["chunks"] and batch["status"] == "receiving":
            batch["status"] = RUNNING
            batch["started_at"] = ctx.now.isoformat()
            ctx.schedule("batch:tick", ctx.now)
        ctx.store(STATE).put(event.batch_id, batch)

    def cancelled(ctx: Context, event: Any) -> None:
        batch = ctx.store(STATE).get(event.batch_id)
        if batch is None or batch["status"] in ENDED_BATCH:
            return
        batch["status"] = "cancelled"
        batch["cancelled_by"] = f"{event.actor}: {event.reason}"
        batch["ended_at"] = ctx.now.isoformat()
        ctx.cancel("batch:tick")
        ctx.store(STATE).put(event.batch_id, batch)

    def item_done(ctx: Context, event: Any) -> None:
        batch = ctx.store(STATE).get(event.batch_id)
        if batch is None:
            return
        if event.applied:
            batch["applied"] += 1
        else:
            batch["refused"] += 1
            if len(batch["refusals"]) < MAX_REFUSALS_SHOWN:
                batch["refusals"].append(
                    {"correlation_id": event.correlation_id, "detail": event.detail}
                )
        answered = batch["applied"] + batch["refused"]
        if batch["status"] == "dispatched" and answered >= batch["dispatched"]:
            batch["status"], batch["ended_at"] = "done", ctx.now.isoformat()
        ctx.store(STATE).put(event.batch_id, batch)

    def tick(ctx: Context, payload: dict[str, Any]) -> None:
        """Dispatch the next slice: `rate_per_s` a second, one tick's worth at a time."""
        batch = ctx.store(STATE).get(ctx.key)
        if batch is None or batch["status"] != RUNNING:
            return
        slice_size = max(1, round(batch["rate_per_s"] * TICK.total_seconds()))
        start = batch["dispatched"]
        end = min(start + slice_size, batch["total"])
        chunks: dict[int, list[list[str]]] = {}
        for index in range(start, end):
            number = index // CHUNK
            if number not in chunks:
                chunks[number] = ctx.store(TARGETS).get(f"{ctx.key}/{number}") or []
            correlation_id, process = chunks[number][index % CHUNK]
            action = action_model.from_avro(
                {
                    "action_id": action_id(ctx.key, index),
                    "action": str(batch["action"]).upper(),
                    "correlation_id": correlation_id,
                    "process": process,
                    "step": batch["step"],
                    "actor": batch["actor"],
                    "reason": batch["reason"],
                    "requested_at": ctx.now,
                    "batch_id": ctx.key,
                    "to_version": batch.get("to_version"),
                }
            )
            ctx.emit(action, key=correlation_id, topic=repartition)
        batch["dispatched"] = end
        if end < batch["total"]:
            ctx.schedule("batch:tick", TICK)
        else:
            batch["status"] = "dispatched"
            for number in range(batch["chunks"]):  # every target is out: the chunks may go
                ctx.store(TARGETS).delete(f"{ctx.key}/{number}")
            if batch["applied"] + batch["refused"] >= end:
                batch["status"], batch["ended_at"] = "done", ctx.now.isoformat()
        ctx.store(STATE).put(ctx.key, batch)

    runner.handle(models[BATCH_REQUESTED], topic=topic)(requested)
    runner.handle(models[BATCH_CANCELLED], topic=topic)(cancelled)
    runner.handle(models[BATCH_ITEM_DONE], topic=topic)(item_done)
    runner.timer("batch:tick")(tick)
    return runner


def ensure_batches_topic(client_conf: dict[str, Any], topic: str, like: str) -> None:
    """Create the batches topic when missing, with as many partitions as the repartition topic
    `like` (it is the tracker's own, as its changelogs are). A broker that does not answer is
    left to the runner's start, which waits for it and says what is wrong."""
    admin = AdminClient(client_conf)
    try:
        known = partition_counts_if_exist(admin, [topic, like])
        if topic not in known and create_missing(admin, {topic: known.get(like, 1)}):
            log.info("created %s with %d partitions", topic, known.get(like, 1))
    except (KafkaException, ConfigurationError) as err:
        log.warning("batches topic %s not created: %s", topic, err)


def chunks_of(targets: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The chosen instances in BatchRequested-sized chunks (at least one, even if empty)."""
    return [targets[i : i + CHUNK] for i in range(0, len(targets), CHUNK)] or [[]]
