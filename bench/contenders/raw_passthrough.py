"""Ceiling: raw confluent-kafka consume -> produce of the same bytes, no decode, no state."""

from __future__ import annotations

import contextlib
import time

from confluent_kafka import Consumer, KafkaException, Producer

from bench.contenders import contender_args
from choreograph.runtime.partitioning import java_compatible


def main() -> None:
    args = contender_args("--input", "--output", "--group", "--bootstrap")
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        java_compatible(
            {"bootstrap.servers": args.bootstrap, "linger.ms": 5, "compression.type": "lz4"}
        )
    )
    consumer.subscribe([args.input])
    last = time.monotonic()
    while True:
        for msg in consumer.consume(1000, 0.05):
            if msg.error() is None:
                while True:
                    try:
                        producer.produce(args.output, msg.value(), msg.key(), headers=msg.headers())
                        break
                    except BufferError:
                        producer.poll(0.05)
        producer.poll(0)
        if time.monotonic() - last >= 0.1:
            producer.flush()
            with contextlib.suppress(KafkaException):  # nothing consumed yet
                consumer.commit(asynchronous=False)
            last = time.monotonic()


if __name__ == "__main__":
    main()
