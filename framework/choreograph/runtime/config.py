"""Settings of a running service, from code or CHOREOGRAPH_* environment variables."""

from __future__ import annotations

import os
import socket
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from choreograph.runtime.kafka_logs import KAFKA_LOG


class Guarantee(StrEnum):
    EXACTLY_ONCE = "exactly_once"
    AT_LEAST_ONCE = "at_least_once"


class RetryPolicy(BaseModel):
    """Bounded exponential backoff with full jitter, per partition."""

    max_attempts: int = Field(5, ge=1)
    initial_backoff_s: float = Field(0.2, gt=0)
    max_backoff_s: float = Field(30.0, gt=0)
    multiplier: float = Field(2.0, ge=1)

    def backoff(self, attempt: int, rand: float) -> float:
        """Delay before retry number `attempt` (1-based); `rand` in [0, 1)."""
        cap = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (attempt - 1))
        return cap / 2 + rand * cap / 2  # "equal jitter": never zero, never above the cap


class ServiceConfig(BaseModel):
    bootstrap_servers: str = "127.0.0.1:9092"
    registry_url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    guarantee: Guarantee = Guarantee.EXACTLY_ONCE
    instance_id: str = Field(default_factory=socket.gethostname)
    state_dir: Path = Path("./state")
    commit_interval_ms: int = Field(100, ge=1)
    max_batch: int = Field(1000, ge=1)
    group_protocol: str = Field("classic", pattern="^(classic|consumer)$")
    retry: RetryPolicy = RetryPolicy()
    input_idle_ms: int = Field(
        0,
        ge=-1,
        description="services with several inputs handle a task's records in timestamp order "
        "across its inputs: how long to wait for an input partition that is caught up but "
        "empty (as Kafka Streams' max.task.idle.ms; 0: not at all, -1: do not order)",
    )
    input_wait_max_ms: int = Field(
        10_000,
        ge=0,
        description="longest wait for an input partition that is behind (records not fetched "
        "yet); past it the others go on and the records are counted as enforced",
    )
    state_memory_mb: int = Field(
        256,
        ge=16,
        description="RocksDB memory of all the service's stores together, in MB: one block "
        "cache with the memtables (up to half) counted in it, as Kafka Streams' bounded memory",
    )
    input_buffer_records: int = Field(
        2_000, ge=2, description="records held per input partition before fetching it pauses"
    )
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    auto_register_schemas: bool = False
    transaction_timeout_ms: int = 60_000
    commit_timeout_s: float = Field(
        10.0, gt=0, description="bound on one commit; past it the work is redone, not waited for"
    )
    shutdown_timeout_s: float = 30.0
    revoke_timeout_s: float = Field(
        10.0, gt=0, description="bound on the commit a revoke waits for"
    )
    security: dict[str, Any] = Field(
        default_factory=dict,
        description="librdkafka security settings for every client (security.protocol, "
        "sasl.mechanism, sasl.username, sasl.password, ssl.ca.location...)",
    )
    registry_user_info: str | None = Field(None, description="registry basic auth, user:password")
    registry_timeout_s: float = Field(
        5.0, gt=0, description="bound on one registry request; the runtime retries, not the client"
    )
    startup_broker_timeout_s: float = Field(
        10.0,
        gt=0,
        description="a broker never reached within this at start-up is a wrong address: exit 2",
    )
    infrastructure_backoff_max_s: float = Field(
        10.0, gt=0, description="longest pause between retries while a dependency is away"
    )
    consumer: dict[str, Any] = Field(default_factory=dict)
    producer: dict[str, Any] = Field(default_factory=dict)

    def client_conf(self) -> dict[str, Any]:
        """What every Kafka client of the service needs: brokers, security, and librdkafka's
        log lines through Python logging (each said once a minute, see `kafka_logs`)."""
        return {"bootstrap.servers": self.bootstrap_servers, **self.security, "logger": KAFKA_LOG}

    def registry_conf(self) -> dict[str, Any]:
        conf: dict[str, Any] = {
            "url": self.registry_url,
            "timeout": self.registry_timeout_s,
            "max.retries": 1,
            "retries.wait.ms": 100,
            "retries.max.wait.ms": 500,
        }
        if self.registry_user_info:
            conf["basic.auth.user.info"] = self.registry_user_info
        return conf

    @classmethod
    def from_env(cls, **overrides: Any) -> ServiceConfig:
        env: dict[str, Any] = {
            "bootstrap_servers": os.environ.get("CHOREOGRAPH_BOOTSTRAP"),
            "registry_url": os.environ.get("CHOREOGRAPH_REGISTRY_URL"),
            "guarantee": os.environ.get("CHOREOGRAPH_GUARANTEE"),
            "instance_id": os.environ.get("CHOREOGRAPH_INSTANCE_ID"),
            "state_dir": os.environ.get("CHOREOGRAPH_STATE_DIR"),
            "metrics_port": os.environ.get("CHOREOGRAPH_METRICS_PORT"),
            "metrics_host": os.environ.get("CHOREOGRAPH_METRICS_HOST"),
            "group_protocol": os.environ.get("CHOREOGRAPH_GROUP_PROTOCOL"),
            "input_idle_ms": os.environ.get("CHOREOGRAPH_INPUT_IDLE_MS"),
            "input_wait_max_ms": os.environ.get("CHOREOGRAPH_INPUT_WAIT_MAX_MS"),
            "state_memory_mb": os.environ.get("CHOREOGRAPH_STATE_MEMORY_MB"),
        }
        security = {
            setting: os.environ[variable]
            for variable, setting in SECURITY_ENV.items()
            if os.environ.get(variable)
        }
        if security:
            env["security"] = security
        env["registry_user_info"] = os.environ.get("CHOREOGRAPH_REGISTRY_USER_INFO")
        return cls(**{**{k: v for k, v in env.items() if v is not None}, **overrides})


# Environment variables for Kafka security (SASL/TLS), as the Helm chart sets them from Secrets.
SECURITY_ENV = {
    "CHOREOGRAPH_SECURITY_PROTOCOL": "security.protocol",
    "CHOREOGRAPH_SASL_MECHANISM": "sasl.mechanism",
    "CHOREOGRAPH_SASL_USERNAME": "sasl.username",
    "CHOREOGRAPH_SASL_PASSWORD": "sasl.password",
    "CHOREOGRAPH_SSL_CA_LOCATION": "ssl.ca.location",
    "CHOREOGRAPH_SSL_CERTIFICATE_LOCATION": "ssl.certificate.location",
    "CHOREOGRAPH_SSL_KEY_LOCATION": "ssl.key.location",
}
