"""What a team repository says it reads, and how a producer's schema is judged against it: the
pinned record whole, and a process definition's fields alone, without defaults, so dropping a
field the tracker reads is a break even where a default would decode it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from choreograph.cli.main import main as cli
from choreograph.contracts.consumers import (
    ConsumerError,
    Reader,
    breaks,
    projection,
    reader_subject,
    repository_reads,
)
from choreograph.project import find_project

RECORD = {
    "type": "record", "name": "Paid", "namespace": "com.acme.pay",
    "fields": [
        {"name": "order_id", "type": "string"},
        {"name": "total", "type": "double"},
        {"name": "channel", "type": "string", "default": "web"},
    ],
}  # fmt: skip


def reader(schema: dict[str, object], reads: str = "r") -> Reader:
    return Reader("prod", "loyalty", "points", "pay.events-com.acme.pay.Paid", reads, schema)


def test_a_projection_reads_the_named_fields_alone_without_their_defaults() -> None:
    found = projection(RECORD, ["channel"])
    assert found == {**{k: v for k, v in RECORD.items() if k != "fields"},
                     "fields": [{"name": "channel", "type": "string"}]}  # fmt: skip
    assert projection(RECORD, ["absent"]) is None


def test_dropping_a_defaulted_field_breaks_only_who_reads_it_without_the_default() -> None:
    dropped = {**RECORD, "fields": RECORD["fields"][:2]}  # type: ignore[index]
    assert breaks(reader(RECORD), dropped, "v2") == []  # the whole record: the default covers
    projected = projection(RECORD, ["channel"])
    assert projected is not None
    [found] = breaks(reader(projected, "process p reads channel"), dropped, "the new schema")
    assert "'channel'" in found.message() and "process p reads channel" in found.message()
    assert found.message().startswith("team loyalty, service points (prod) reads ")


def test_subject_names_refuse_what_would_not_parse_back() -> None:
    assert reader_subject("prod", "loyalty", "points", "a.events-com.x.A") == (
        "_readers.prod.loyalty.points.a.events-com.x.A"
    )
    with pytest.raises(ConsumerError, match=r"team 'Loy\.alty'"):
        reader_subject("prod", "Loy.alty", "points", "s")


def test_a_repository_reads_its_pinned_records_and_its_definitions_fields(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli(["init", "acme-loyalty"]) == 0
    project = find_project(tmp_path / "acme-loyalty")
    assert project is not None
    pulled = project.pulled / "pay"
    pulled.mkdir(parents=True)
    (pulled / "Paid.avsc").write_text(json.dumps(RECORD))
    (project.pulled / "schemas.yaml").write_text(
        "default_compatibility: BACKWARD\nrecords:\n  com.acme.pay.Paid: {topic: pay.events}\n"
    )
    subject = "pay.events-com.acme.pay.Paid"
    pin = {"version": 3, "id": 7, "fingerprint": "x", "path": "schemas/pulled/pay/Paid.avsc"}
    project.lock.write_text(json.dumps({"lock_version": 1, "subjects": {subject: pin}}))
    project.processes.mkdir(exist_ok=True)
    (project.processes / "rewards.v2.yaml").write_text(
        "name: rewards\nversion: 2\nowners: {business: l, technical: l, on_call: l}\n"
        "start: com.acme.pay.Paid\nsuccess: [com.acme.pay.Paid]\nvalue_at_risk: total\n"
        "search_attributes:\n  channel: channel\n"
        "steps:\n  - name: award\n    completes_on: [com.acme.pay.Paid]\n"
    )
    project.policies.mkdir(exist_ok=True)
    (project.policies / "big-orders.yaml").write_text(
        "id: loyalty.big-orders\nversion: 4\nowners: [loyalty]\nreads: com.acme.pay.Paid\n"
        "expression: event.total > 100.0\n"
    )
    reads = {(r.service, r.subject): r for r in repository_reads(project, "points")}
    policy = reads[("points-policy-loyalty-big-orders", subject)]
    assert [f["name"] for f in policy.schema["fields"]] == ["total"]
    assert policy.reads == "policy loyalty.big-orders v4 reads total of com.acme.pay.Paid"
    whole = reads[("points", subject)]
    assert whole.schema == RECORD and whole.reads == "the whole record, as pinned at version 3"
    fields = reads[("points-process-rewards", subject)]
    assert [f["name"] for f in fields.schema["fields"]] == ["total", "channel"]
    assert fields.reads == (
        "process rewards v2 reads channel, total of com.acme.pay.Paid (the start, step award)"
    )
