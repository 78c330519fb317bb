"""Processor runtime: Service, partition tasks, the consume-process-produce loop, EOS, timers,
retries and the DLQ."""
