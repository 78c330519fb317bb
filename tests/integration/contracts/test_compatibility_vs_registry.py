"""Every corpus case's verdict, asked of the real schema registry, agrees with the checker's."""

from __future__ import annotations

import json
import uuid

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.compat_corpus import CASES, Case
from tests.kafka_helpers import registry_client
from tests.unit.contracts.test_compatibility_corpus import checker_verdict


def registry_verdict(client: SchemaRegistryClient, case: Case) -> str:
    """Register earlier versions freely, then the new one under the case's mode."""
    subject = f"corpus.{case.name}-{uuid.uuid4().hex[:8]}"
    *old, new = case.versions
    for version in old:
        client.register_schema(subject, Schema(json.dumps(version), "AVRO"))
    client.set_compatibility(subject, case.mode)
    try:
        client.register_schema(subject, Schema(json.dumps(new), "AVRO"))
    except SchemaRegistryError as err:
        if err.http_status_code == 409:
            return "incompatible"
        if err.http_status_code in (400, 422):
            return "invalid"
        raise
    return "compatible"


@pytest.fixture(scope="module")
def client(registry_url: str) -> SchemaRegistryClient:
    return registry_client(registry_url)


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_registry_agrees_with_checker(client: SchemaRegistryClient, case: Case) -> None:
    ours, _ = checker_verdict(case)
    theirs = registry_verdict(client, case)
    if case.strict:
        # The checker is deliberately stricter than the registry here (see the corpus docstring).
        assert (ours, theirs) == (case.verdict, "compatible")
    else:
        assert ours == theirs == case.verdict
