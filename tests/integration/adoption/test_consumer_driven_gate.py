"""The consumer-driven contract gate across three team repositories, as users run it: the wheel
in a fresh venv, `choreograph init` in empty directories, the real registry (and, for the impact
report, a saga tracker's API over instances of the consumer's process).

A producer's record has a field `channel` with a default. Two teams read it: audit pins the whole
record (the default covers it), loyalty's process definition reads `channel` as a search
attribute (it relies on the field itself). Both publish what they read for prod. The producer
wants to drop `channel`: its registry mode would accept it, but its gate fails, naming loyalty's
process and the field, and so does `can-i-deploy`; once loyalty stops reading the field and
publishes again, both pass.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from choreograph.testing.servers import Servers
from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, Principal, digest
from saga_tracker.service import build_tracker
from saga_tracker.traces import TraceServer, committed_instances
from tests.integration.adoption.test_team_repository import User
from tests.unit.saga_tracker.test_tracker_service import MODELS, definitions, send

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEFINITION = """\
name: loyalty-$d
version: 1
owners: {business: loyalty, technical: loyalty, on_call: loyalty}
start: com.acme.$d.$R
success: [com.acme.$d.$R]
search_attributes:
  channel: channel
steps:
  - name: award
    completes_on: [com.acme.$d.$R]
"""


def test_a_producer_cannot_drop_a_field_a_consumers_process_reads_until_it_stops(
    venv: Path, tmp_path: Path, servers: Servers
) -> None:
    domain = f"c{uuid.uuid4().hex[:7]}"
    record = f"{domain.capitalize()}Requested"
    fullname = f"com.acme.{domain}.{record}"
    subject = f"{domain}.events-{fullname}"
    service = f"svc-{domain}"
    user = User(venv, tmp_path, servers)
    for repo in (f"acme-{domain}", "acme-loyalty", "acme-audit"):
        user.ok("choreograph", "init", repo)
    producer = user.at(tmp_path / f"acme-{domain}")
    loyalty, audit = user.at(tmp_path / "acme-loyalty"), user.at(tmp_path / "acme-audit")

    # v1 with `channel` (defaulted); the producer's mode lets it drop fields its readers ignore.
    contract = producer.cwd / f"schemas/avro/{domain}/{record}.avsc"
    schema = json.loads(contract.read_text())
    schema["fields"].append({"name": "channel", "type": "string", "default": "web",
                             "doc": "Where the request came from."})  # fmt: skip
    contract.write_text(json.dumps(schema, indent=2))
    policy = producer.cwd / "schemas/avro/schemas.yaml"
    policy.write_text(policy.read_text().replace(
        "records: {}", f"records:\n  {fullname}: {{compatibility: BACKWARD}}"))  # fmt: skip
    producer.ok("choreograph", "schemas", "register")
    producer.ok("choreograph", "deployed", service, "--to", "prod", "--version", "1")

    for consumer in (loyalty, audit):
        consumer.ok("choreograph", "contracts", "pull", subject)
    (loyalty.cwd / "processes").mkdir(exist_ok=True)
    definition = loyalty.cwd / f"processes/loyalty-{domain}.v1.yaml"
    definition.write_text(DEFINITION.replace("$d", domain).replace("$R", record))
    published = loyalty.ok("choreograph", "contracts", "publish", "--env", "prod",
                           "--team", "loyalty", "--service", "points")  # fmt: skip
    assert f"published points-process-loyalty-{domain} reads {subject}" in published
    assert "reads channel of" in published
    audit.ok("choreograph", "contracts", "publish", "--env", "prod", "--team", "audit",
             "--service", "ledger")  # fmt: skip
    # The readers may deploy: what they read is what the producer runs in prod.
    may = loyalty.run("choreograph", "can-i-deploy", "points", "--to", "prod", "--team", "loyalty")
    assert may.returncode == 0, may.stdout + may.stderr
    assert "can points be deployed to prod? yes" in may.stderr

    # The producer drops `channel`: compatible by its registry mode, not for loyalty's process.
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "channel"]
    contract.write_text(json.dumps(schema, indent=2))
    # For its reviewers, the gate says who reads it and what the processes that do have open.
    kit = TestKit(build_tracker(definitions(definition.read_text()), MODELS), partitions=1)
    for n in range(3):
        send(kit, fullname, corr=f"i-{n}", key=f"r-{n}")
    server = TraceServer(committed_instances(lambda: kit.tasks),
                         access=Access({digest("reviewer"): Principal("reviewer", "viewer")}),
                         facts=definitions(definition.read_text()).facts()).start()  # fmt: skip
    try:
        reviewed = producer.run("choreograph", "contracts", "check", "--tracker", server.url,
                                "--token", "reviewer")  # fmt: skip
    finally:
        server.stop()
    assert f"impact: {subject} changes; 3 reader(s)" in reviewed.stderr, reviewed.stderr
    assert "read by team audit, ledger (prod)" in reviewed.stderr
    assert f"process loyalty-{domain}: 3 open instance(s)" in reviewed.stderr
    assert "at award (running): 3" in reviewed.stderr
    gated = producer.run("choreograph", "contracts", "check", "--format", "json")
    assert gated.returncode == 1, gated.stdout + gated.stderr
    (finding,) = json.loads(gated.stdout)
    assert finding["rule"] == "consumer-broken"
    message = finding["message"]
    assert f"team loyalty, service points-process-loyalty-{domain} (prod)" in message
    assert subject in message and "'channel'" in message
    assert f"process loyalty-{domain} v1 reads channel" in message and "step award" in message
    assert "team audit" not in message  # the default covers audit's pinned reader
    refused = producer.run("choreograph", "can-i-deploy", service, "--to", "prod", "--format",
                           "github")  # fmt: skip
    assert refused.returncode == 1 and "::error" in refused.stdout and "loyalty" in refused.stdout

    # Loyalty stops reading the field and publishes again: the producer may drop it.
    definition.write_text(
        definition.read_text().replace("search_attributes:\n  channel: channel\n", "")
    )
    loyalty.ok("choreograph", "contracts", "publish", "--env", "prod", "--team", "loyalty",
               "--service", "points")  # fmt: skip
    passed = producer.run("choreograph", "contracts", "check")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert "own contract(s) with 2 registered reader(s)" in passed.stderr
    allowed = producer.run("choreograph", "can-i-deploy", service, "--to", "prod")
    assert allowed.returncode == 0 and "yes" in allowed.stderr, allowed.stdout + allowed.stderr
