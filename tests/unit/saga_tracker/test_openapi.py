"""The API's OpenAPI document is served, names every route the server has (and no other), and
describes what the server really answers: each response checked against its schema."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from starlette.routing import Route

from choreograph.testing.testkit import TestKit
from saga_tracker.access import Access, Principal, digest
from saga_tracker.traces import TraceServer, committed_instances, openapi_document
from tests.unit.saga_tracker.test_traces import get
from tests.unit.saga_tracker.test_traces import server as traced  # noqa: F401  (a fixture)

DOCUMENT = openapi_document()
# OpenAPI 3.1 schemas are JSON Schema 2020-12; references resolve inside the document.
REGISTRY = Registry().with_resource("doc", Resource(DOCUMENT, specification=DRAFT202012))


def _into_document(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: f"doc{v}" if k == "$ref" else _into_document(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_into_document(v) for v in schema]
    return schema


def conforms(path: str, method: str, status: int, body: Any) -> None:
    """`body` is what the document says `path` answers to `method` with `status`."""
    answer = DOCUMENT["paths"][path][method]["responses"][str(status)]
    while "$ref" in answer:
        answer = DOCUMENT["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]]
    schema = _into_document(answer["content"]["application/json"]["schema"])
    jsonschema.Draft202012Validator(schema, registry=REGISTRY).validate(body)


def test_the_document_names_exactly_the_servers_routes(
    traced: tuple[TraceServer, TestKit],  # noqa: F811
) -> None:
    srv, _ = traced
    routes = {
        (r.path.replace(":str}", "}"), method.lower())
        for r in srv.app.routes
        if isinstance(r, Route)
        for method in (r.methods or set()) - {"HEAD"}
    }
    assert routes == {(p, m) for p, ops in DOCUMENT["paths"].items() for m in ops}
    status, _, served = get(f"{srv.url}/api/openapi.json")
    assert status == 200 and served == DOCUMENT


def test_reads_answer_what_the_document_says(traced: tuple[TraceServer, TestKit]) -> None:  # noqa: F811
    srv, _ = traced
    status, _, listed = get(f"{srv.url}/api/instances")
    assert status == 200 and len(listed) == 2
    conforms("/api/instances", "get", 200, listed)
    status, _, one = get(f"{srv.url}/api/instances/stuck")
    assert status == 200 and one["timeline"]
    conforms("/api/instances/{correlation_id}", "get", 200, one)
    status, _, missing = get(f"{srv.url}/api/instances/nobody")
    assert status == 404
    conforms("/api/instances/{correlation_id}", "get", 404, missing)
    status, _, bad = get(f"{srv.url}/api/instances?limit=0")
    assert status == 400
    conforms("/api/instances", "get", 400, bad)
    status, _, long = get(f"{srv.url}/api/instances?process={'x' * 9000}")
    assert status == 414
    conforms("/api/instances", "get", 414, long)
    status, _, approvals = get(f"{srv.url}/api/approvals")
    assert status == 200
    conforms("/api/approvals", "get", 200, approvals)


def test_a_wrong_schema_is_caught() -> None:
    """The check itself: a body the document does not allow fails it."""
    try:
        conforms("/api/instances", "get", 200, [{"correlation_id": 7}])
    except jsonschema.ValidationError:
        return
    raise AssertionError("a summary without its fields passed the schema")


def test_refusals_answer_what_the_document_says(traced: tuple[TraceServer, TestKit]) -> None:  # noqa: F811
    _, kit = traced
    access = Access({digest("v-token"): Principal("victor", "viewer")})
    srv = TraceServer(committed_instances(lambda: kit.tasks), access=access).start()
    try:
        status, _, refused = get(f"{srv.url}/api/instances")
        assert status == 401
        conforms("/api/instances", "get", 401, refused)
        request = urllib.request.Request(
            f"{srv.url}/api/instances/stuck/actions", data=b"{}", method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer v-token"},
        )  # fmt: skip
        try:
            urllib.request.urlopen(request)
            raise AssertionError("acting without a desk was accepted")
        except urllib.error.HTTPError as err:
            assert err.code == 503
            answer = json.loads(err.read())
        conforms("/api/instances/{correlation_id}/actions", "post", 503, answer)
    finally:
        srv.stop()
