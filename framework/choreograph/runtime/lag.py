"""Consumer lag per input partition, from the client's cached watermarks (no broker round trip)."""

from __future__ import annotations

from confluent_kafka import Consumer

from choreograph.observability.metrics import ServiceMetrics


def report_lag(consumer: Consumer, metrics: ServiceMetrics, service: str) -> None:
    assigned = consumer.assignment()
    if not assigned:
        return
    for tp in consumer.position(assigned):
        _, high = consumer.get_watermark_offsets(tp, cached=True)
        if high >= 0 and tp.offset >= 0:
            metrics.lag.labels(service, tp.topic, str(tp.partition)).set(high - tp.offset)
