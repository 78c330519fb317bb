"""Change control for process definitions: a released version never changes in place, and a
change is reviewed as a summary of what it does.

A version that exists on the base ref is what in-flight instances are pinned to; editing it
would change their rules under them. So a change of meaning (anything but comments and layout)
needs a new version file, and a released version file stays until no instance runs on it."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from choreograph.contracts.diagnostics import Diagnostic
from choreograph.contracts.history import git, require_ref
from choreograph.process.definition import (
    DefinitionError,
    ProcessDefinition,
    Step,
    parse_definition,
)


def released(repo: Path, ref: str, folder: str) -> dict[str, str]:
    """Definition files under `folder` at `ref`: repo-relative path -> text."""
    require_ref(repo, ref)
    names = git(repo, "ls-tree", "-r", "--name-only", ref, "--", folder).split()
    return {n: git(repo, "show", f"{ref}:{n}") for n in names if n.endswith(".yaml")}


def check_in_place(repo: Path, ref: str, folder: str) -> list[Diagnostic]:
    """Released versions changed in meaning, or removed, since `ref`."""
    found: list[Diagnostic] = []
    for path, text in sorted(released(repo, ref, folder).items()):
        try:
            before = parse_definition(text, f"{ref}:{path}").definition
        except DefinitionError:
            continue  # broken on the base already: nothing released to protect
        current = repo / path
        if not current.exists():
            found.append(Diagnostic(path, 1, 1, "process-version-removed", "error",
                f"{before.name} v{before.version} was released on {ref} and is gone; in-flight "
                "instances are pinned to it",
                "keep the file until no instance runs on that version"))  # fmt: skip
            continue
        try:
            now = parse_definition(current.read_text(), path).definition
        except DefinitionError:
            continue  # `processes lint` reports it
        if now.model_dump() != before.model_dump():
            changes = "; ".join(describe(before, now)) or "its meaning changed"
            found.append(Diagnostic(path, 1, 1, "process-version-changed", "error",
                f"{before.name} v{before.version} was released on {ref} and changed in place "
                f"({changes})",
                f"put the change in a new file, {before.name}.v{before.version + 1}.yaml, with "
                f"version: {before.version + 1}; instances started on v{before.version} keep "
                "its rules"))  # fmt: skip
    return found


def _duration(value: timedelta | None) -> str:
    if value is None:
        return "none"
    seconds = int(value.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{value.total_seconds():g}s"


def _change(what: str, before: Any, after: Any) -> str | None:
    if before == after:
        return None
    show = _duration if isinstance(before or after, timedelta) else str
    return f"{what}: {show(before)} -> {show(after)}"


def _step_changes(a: Step, b: Step) -> list[str]:
    prefix = f"step {a.name}"
    found = [
        _change(f"{prefix} deadline", a.deadline, b.deadline),
        _change(f"{prefix} on timeout", a.on_timeout, b.on_timeout),
        _change(f"{prefix} owner", a.owner, b.owner),
        _change(f"{prefix} starts on", sorted(a.starts_on), sorted(b.starts_on)),
        _change(f"{prefix} completes on", sorted(a.completes_on), sorted(b.completes_on)),
        _change(f"{prefix} fails on", sorted(a.fails_on), sorted(b.fails_on)),
    ]
    ca, cb = a.compensation, b.compensation
    if (ca is None) != (cb is None):
        found.append(
            f"{prefix} compensation: {'added ' + cb.command if cb else 'removed ' + ca.command}"  # type: ignore[union-attr]
        )
    elif ca is not None and cb is not None:
        found += [
            _change(f"{prefix} compensation", ca.command, cb.command),
            _change(f"{prefix} compensation deadline", ca.deadline, cb.deadline),
            _change(f"{prefix} compensation payload", ca.payload, cb.payload),
            _change(
                f"{prefix} compensation confirmed by",
                sorted(ca.completes_on),
                sorted(cb.completes_on),
            ),
        ]
    ra, rb = a.retry, b.retry
    found.append(_change(f"{prefix} retry", ra.command if ra else None, rb.command if rb else None))
    return [f for f in found if f]


def describe(a: ProcessDefinition, b: ProcessDefinition) -> list[str]:
    """What changes from `a` to `b`, one line per change, in reviewers' terms."""
    found = [
        _change("name", a.name, b.name),
        _change("version", a.version, b.version),
        _change("start", a.start, b.start),
        _change("deadline", a.deadline, b.deadline),
        _change("on timeout", a.on_timeout, b.on_timeout),
        _change("sla", a.sla, b.sla),
        _change("success", sorted(a.success), sorted(b.success)),
        _change("failure", sorted(a.failure), sorted(b.failure)),
        _change("value at risk", a.value_at_risk, b.value_at_risk),
        _change("business owner", a.owners.business, b.owners.business),
        _change("technical owner", a.owners.technical, b.owners.technical),
        _change("on call", a.owners.on_call, b.owners.on_call),
    ]
    steps_a, steps_b = {s.name: s for s in a.steps}, {s.name: s for s in b.steps}
    found += [f"step {n} removed" for n in steps_a if n not in steps_b]
    found += [
        f"step {n} added (deadline {_duration(s.deadline)}, on timeout {s.on_timeout}"
        + (f", compensated by {s.compensation.command})" if s.compensation else ")")
        for n, s in steps_b.items()
        if n not in steps_a
    ]
    order_a = [n for n in steps_a if n in steps_b]
    order_b = [n for n in steps_b if n in steps_a]
    if order_a != order_b:
        found.append(f"step order: {', '.join(order_a)} -> {', '.join(order_b)}")
    for name in order_a:
        found += _step_changes(steps_a[name], steps_b[name])
    return [f for f in found if f]


def render_diff(a: ProcessDefinition, b: ProcessDefinition, labels: Iterable[str]) -> str:
    first, second = labels
    lines = [f"{a.name} v{a.version} ({first}) -> {b.name} v{b.version} ({second})"]
    changes = describe(a, b)
    lines += [f"  {c}" for c in changes] or ["  no change in meaning"]
    return "\n".join(lines)


def affected_steps(a: ProcessDefinition, b: ProcessDefinition) -> list[str]:
    """The steps of `a` whose instances a change to `b` touches: every step when something of
    the whole process changes, else those removed or changed."""
    steps_a, steps_b = {s.name: s for s in a.steps}, {s.name: s for s in b.steps}
    whole = [
        (a.start, sorted(a.success), sorted(a.failure), a.deadline, a.on_timeout, a.sla,
         a.value_at_risk),
        (b.start, sorted(b.success), sorted(b.failure), b.deadline, b.on_timeout, b.sla,
         b.value_at_risk),
    ]  # fmt: skip
    if whole[0] != whole[1]:
        return list(steps_a)
    return [n for n, s in steps_a.items() if n not in steps_b or _step_changes(s, steps_b[n])]
