"""`choreograph schemas`: lint, check, register and generate code for the Avro contracts.

Exit codes: 0 clean (warnings allowed), 1 a breaking change or a policy error, 2 unreadable input
(invalid JSON or Avro, bad schemas.yaml, unknown git ref, unreachable registry).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from choreograph.cli.cluster import cluster_config, registry_client
from choreograph.cli.output import BREAKING, OK, UNREADABLE, finish
from choreograph.cli.paths import NO_CONTRACTS, default, generated, here
from choreograph.contracts.avro_model import Schema, SchemaError, parse_schema
from choreograph.contracts.catalog import Catalog, Contract, ContractError, load_catalog
from choreograph.contracts.codegen import CodegenError, drift, render_all, write
from choreograph.contracts.compatibility import Mode, check_compatibility
from choreograph.contracts.diagnostics import Diagnostic
from choreograph.contracts.history import GitError, changed_since, toplevel, versions_at_or_before
from choreograph.contracts.lint import lint_contract
from choreograph.project import Project, ProjectError
from choreograph.testing.servers import REGISTRY_ENV


class Unreadable(Exception):
    """Input the command cannot work with; exit 2."""


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("schemas", help="lint, check, register and codegen Avro contracts")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", type=Path, default=default("contracts"), help="contracts folder")
        p.add_argument("--format", choices=("text", "json", "github"), default="text")

    lint = commands.add_parser("lint", help="policy: docs, namespaces, naming, PII tags")
    common(lint)
    lint.set_defaults(run=_guarded(run_lint))

    check = commands.add_parser("check", help="compatibility against git history or a registry")
    common(check)
    source = check.add_mutually_exclusive_group(required=True)
    source.add_argument("--against", metavar="GIT_REF", help="offline: earlier versions in git")
    source.add_argument("--registry", metavar="URL", help="online: versions in the registry")
    check.set_defaults(run=_guarded(run_check))

    reg = commands.add_parser("register", help="register every contract, then set its mode")
    common(reg)
    reg.add_argument(
        "--registry", metavar="URL", default=os.environ.get(REGISTRY_ENV),
        required=REGISTRY_ENV not in os.environ, help=f"the registry ({REGISTRY_ENV})",
    )  # fmt: skip
    reg.set_defaults(run=_guarded(run_register))

    gen = commands.add_parser("codegen", help="generate pydantic event models, one module a domain")
    gen.add_argument("--root", type=Path, default=default("contracts"))
    gen.add_argument(
        "--out", type=Path, default=generated(), help="where models go (default: the project's)"
    )
    gen.add_argument("--check", action="store_true", help="fail if generated files are stale")
    gen.add_argument("--format", choices=("text", "json"), default="text")
    gen.set_defaults(run=_guarded(run_codegen))


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return command(args)
        except Unreadable as err:
            print(f"choreograph schemas: {err}", file=sys.stderr)
            return UNREADABLE

    return run


def _catalog(root: Path) -> tuple[Catalog, list[Diagnostic]]:
    if not root.is_dir():
        raise Unreadable(f"no contracts folder at {root}: {NO_CONTRACTS}")
    try:
        catalog = load_catalog(root)
    except ContractError as err:  # schemas.yaml itself
        raise Unreadable(str(err)) from None
    unreadable = [e.diagnostic() for e in catalog.errors]
    return catalog, unreadable


def run_lint(args: argparse.Namespace) -> int:
    catalog, unreadable = _catalog(args.root)
    found = [d for c in catalog.contracts.values() for d in lint_contract(c, catalog.policy)]
    return finish(found, unreadable, args.format)


def compatibility_diagnostics(
    catalog: Catalog, contract: Contract, previous: Sequence[tuple[int | str, Schema]]
) -> list[Diagnostic]:
    """Findings of `contract` against earlier versions; allowed breaks become notices."""
    out = []
    for finding in check_compatibility(contract.schema, previous, contract.compatibility):
        line, col = contract.where(finding.path_in_new)
        allowed = catalog.policy.allowed(contract.fullname, finding)
        problem = finding.problem
        message = f"{finding.describe()} [{contract.compatibility.value}]"
        if allowed:
            out.append(
                Diagnostic(
                    contract.path,
                    line,
                    col,
                    problem.rule,
                    "notice",
                    f"allowed break: {message} (reason: {allowed.reason})",
                )
            )
        else:
            out.append(
                Diagnostic(contract.path, line, col, problem.rule, "error", message, problem.fix)
            )
    return out


def _parse_version(text: str) -> Schema:
    return parse_schema(json.loads(text))


def run_check(args: argparse.Namespace) -> int:
    catalog, unreadable = _catalog(args.root)
    compared: list[int] = [0, 0]  # contracts with history, earlier versions read
    if args.against:
        found = _check_git(catalog, args.root, args.against, compared)
        against = f"git history up to {args.against}"
    else:
        found = _check_registry(catalog, _registry_client(args), compared)
        against = f"the registry at {args.registry}"
    scope = "changed " if args.against else ""
    summary = (
        f"compared {compared[0]} {scope}contract(s) of {len(catalog.contracts)} with "
        f"{compared[1]} earlier version(s) in {against}"
    )
    return finish(found, unreadable, args.format, summary)


def _check_git(
    catalog: Catalog, root: Path, ref: str, compared: list[int] | None = None
) -> list[Diagnostic]:
    try:
        repo = toplevel(root)
        folder = str(root.resolve().relative_to(repo))
        changed = changed_since(repo, ref, folder)
    except (GitError, ValueError) as err:
        raise Unreadable(str(err)) from None
    found: list[Diagnostic] = []
    for rel in changed:
        contract = next(
            (c for c in catalog.contracts.values() if Path(c.path).resolve() == repo / rel), None
        )
        if contract is None:
            continue  # unreadable now: already reported
        previous: list[tuple[int | str, Schema]] = []
        for commit, text in versions_at_or_before(repo, ref, rel):
            try:
                previous.append((commit, _parse_version(text)))
            except (ValueError, SchemaError) as err:
                found.append(
                    Diagnostic(
                        contract.path,
                        1,
                        1,
                        "history-unreadable",
                        "warning",
                        f"version at {commit} is not valid Avro, skipped: {err}",
                    )
                )
        if compared is not None and previous:
            compared[0] += 1
            compared[1] += len(previous)
        found += compatibility_diagnostics(catalog, contract, previous)
    return found


def _registry_client(args: argparse.Namespace) -> Any:
    """The registry named on the line, with the services' registry credentials and CA
    (CHOREOGRAPH_REGISTRY_USER_INFO, CHOREOGRAPH_REGISTRY_CA_LOCATION)."""
    return registry_client(cluster_config(args))


def registered_versions(client, subject: str) -> list[tuple[int | str, Schema]]:  # type: ignore[no-untyped-def]
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as err:
        if err.http_status_code == 404:
            return []
        if err.http_status_code in (401, 403):
            raise Unreadable(
                f"the registry refused the credentials ({err.http_status_code}): set "
                "CHOREOGRAPH_REGISTRY_USER_INFO (user:password) to an identity allowed to read "
                "and register subjects"
            ) from None
        raise Unreadable(f"registry: {err}") from None
    except Exception as err:
        raise Unreadable(
            f"cannot use the schema registry: {err}; check --registry (CHOREOGRAPH_REGISTRY_URL) "
            "and its credentials (CHOREOGRAPH_REGISTRY_USER_INFO)"
        ) from None
    return [(v, _parse_version(client.get_version(subject, v).schema.schema_str)) for v in versions]


def _check_registry(
    catalog: Catalog, client: Any, compared: list[int] | None = None
) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for contract in sorted(catalog.contracts.values(), key=lambda c: c.path):
        previous = registered_versions(client, contract.subject)
        if not previous:
            found.append(
                Diagnostic(
                    contract.path,
                    1,
                    1,
                    "new-subject",
                    "notice",
                    f"{contract.subject} is not registered yet",
                )
            )
        elif compared is not None:
            compared[0] += 1
            compared[1] += len(previous)
        found += compatibility_diagnostics(catalog, contract, previous)
    return found


def run_register(args: argparse.Namespace) -> int:
    from confluent_kafka.schema_registry import Schema as RegistrySchema
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    catalog, unreadable = _catalog(args.root)
    if unreadable:
        return finish([], unreadable, args.format)
    client = _registry_client(args)
    found: list[Diagnostic] = []
    for contract in sorted(catalog.contracts.values(), key=lambda c: c.path):
        problems = compatibility_diagnostics(
            catalog, contract, registered_versions(client, contract.subject)
        )
        found += problems
        if any(d.severity == "error" for d in problems):
            continue
        allowed_break = any(d.severity == "notice" for d in problems)
        try:
            if allowed_break:  # accepted on purpose: let this one version through
                client.set_compatibility(contract.subject, Mode.NONE.value)
            schema_id = client.register_schema(
                contract.subject, RegistrySchema(contract.canonical, "AVRO")
            )
            client.set_compatibility(contract.subject, contract.compatibility.value)
        except SchemaRegistryError as err:
            found.append(
                Diagnostic(
                    contract.path, 1, 1, "registry-rejected", "error", f"{contract.subject}: {err}"
                )
            )
            continue
        found.append(
            Diagnostic(
                contract.path,
                1,
                1,
                "registered",
                "notice",
                f"{contract.subject} id {schema_id} ({contract.compatibility.value})",
            )
        )
    return finish(found, unreadable, args.format)


def run_codegen(args: argparse.Namespace) -> int:
    if args.out is None:
        print(
            "choreograph schemas codegen: where should the models go? There is no team "
            "repository here to say (`choreograph init NAME` starts one): pass --out",
            file=sys.stderr,
        )
        return UNREADABLE
    try:
        project = here()
        base = project.root if project is not None else Path.cwd()
        files = _rendered(args.root, _pulled_root(args.root), base)
    except Unreadable as err:
        print(f"choreograph schemas codegen: {err}", file=sys.stderr)
        return UNREADABLE
    except CodegenError as err:
        print(f"choreograph schemas codegen: {err}", file=sys.stderr)
        return BREAKING
    if args.check:
        stale = drift(args.out, files)
        if args.format == "json":
            print(json.dumps({"out": str(args.out), "stale": stale}, indent=2))
        else:
            for line in stale:
                print(line)
        if stale:
            print("run `choreograph schemas codegen` and commit the result", file=sys.stderr)
        return BREAKING if stale else OK
    written = write(args.out, files)
    if args.format == "json":
        print(json.dumps({"out": str(args.out), "written": [str(p) for p in written]}, indent=2))
    for path in written if args.format == "text" else ():
        print(f"wrote {path}")
    return OK


def _pulled_root(root: Path) -> Path | None:
    """Other teams' contracts generated with these: the project's pulled folder, when these
    are the project's own contracts."""
    project = here()
    if project is None or root.resolve() != project.contracts.resolve():
        return None
    return project.pulled if project.pulled.is_dir() else None


def _rendered(root: Path, pulled: Path | None, base: Path) -> dict[str, str]:
    catalog, unreadable = _catalog(root)
    others = load_catalog(pulled) if pulled is not None else None
    problems = [*unreadable, *(e.diagnostic() for e in (others.errors if others else []))]
    if problems:
        raise Unreadable("; ".join(d.text() for d in problems))
    return render_all(
        catalog.contracts.values(),
        _shown(root, base),
        others.contracts.values() if others else (),
        _shown(pulled, base) if pulled is not None else "",
    )


def _shown(folder: Path, base: Path) -> str:
    try:
        return folder.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return folder.as_posix()


def regenerate(project: Project) -> list[Path]:
    """Write the models of the project's own and pulled contracts; the files written."""
    pulled = project.pulled if project.pulled.is_dir() else None
    try:
        return write(project.generated, _rendered(project.contracts, pulled, project.root))
    except CodegenError as err:
        raise ProjectError(str(err)) from None
    except Unreadable as err:
        raise ProjectError(str(err)) from None
