"""The tally workload as a choreograph Service; `python -m bench.workload.service` runs it.

Behaviours, chosen per input for reliability tests: `poison` always fails (exhausts retries, goes
to the DLQ), `flaky` fails on its first attempt in this process, `timer` answers one second later
from a durable timer instead of at once (one pending answer per key), `timer-poison` schedules a
timer whose handler always fails, `crash` ends the process from inside the handler (as a bug that
escapes every handler's error handling would).
"""

from __future__ import annotations

import argparse
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench.workload import Tallied, Tick, topics
from choreograph.observability.logs import configure_json_logging
from choreograph.runtime.config import Guarantee, RetryPolicy, ServiceConfig
from choreograph.runtime.context import Context
from choreograph.runtime.service import Service


def build(prefix: str, name: str | None = None, sink: str | None = None) -> Service:
    """The tally service reading `<prefix>.ticks`; name (group) and output topic overridable."""
    source, default_sink = topics(prefix)
    sink = sink or default_sink
    service = Service(name or f"{prefix}-tally", [source], outputs=[sink], stores=["tallies"])
    failed_once: set[str] = set()

    def tally(ctx: Context, event: Any) -> None:
        store = ctx.store("tallies")
        current = store.get(ctx.key) or {"count": 0, "total": 0}
        current = {"count": current["count"] + 1, "total": current["total"] + event.amount}
        store.put(ctx.key, current)
        ctx.emit(
            Tallied(
                input_id=event.id, key=event.key, count=current["count"], total=current["total"]
            ),
            topic=sink,
        )

    @service.handle(Tick, topic=source)
    def on_tick(ctx: Context, event: Any) -> None:
        if event.behaviour == "crash":
            raise SystemExit(f"crash input {event.id}")
        if event.behaviour == "poison":
            raise RuntimeError(f"poison input {event.id}")
        if event.behaviour == "flaky" and event.id not in failed_once:
            failed_once.add(event.id)
            raise ConnectionError(f"flaky dependency for {event.id}")
        if event.behaviour in ("timer", "timer-poison"):  # one pending answer per key and name
            ctx.schedule("answer", timedelta(seconds=1), {"event": event.to_avro()})
            return
        tally(ctx, event)

    @service.timer("answer")
    def answer(ctx: Context, payload: dict[str, Any]) -> None:
        if payload["event"]["behaviour"] == "timer-poison":
            raise RuntimeError(f"poison timer for {ctx.key}")
        tally(ctx, Tick(**payload["event"]))

    return service


def config(
    instance: str, state_dir: Path, guarantee: str = "exactly_once", **extra: Any
) -> ServiceConfig:
    return ServiceConfig.from_env(
        instance_id=instance,
        state_dir=state_dir,
        guarantee=Guarantee(guarantee),
        auto_register_schemas=True,
        retry=RetryPolicy(max_attempts=3, initial_backoff_s=0.1, max_backoff_s=0.5),
        **extra,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, allow_abbrev=False)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--instance", required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--guarantee", default="exactly_once")
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--group-protocol", default="classic")
    parser.add_argument("--name", help="service name (consumer group); default <prefix>-tally")
    parser.add_argument("--sink", help="output topic; default <prefix>.tallies")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--commit-interval-ms", type=int, default=100)
    args, _ = parser.parse_known_args()  # the benchmark passes every contender the same flags
    configure_json_logging(args.log_level)
    build(args.prefix, args.name, args.sink).run(
        config(
            args.instance,
            args.state_dir,
            args.guarantee,
            metrics_port=args.metrics_port,
            group_protocol=args.group_protocol,
            commit_interval_ms=args.commit_interval_ms,
        )
    )


if __name__ == "__main__":
    main()
