"""Approvals with segregation of duties: a machine state can wait for a person's approval.

Entering such a state emits `ApprovalRequested` on `choreograph.approvals`, keyed by the waiting
instance. An approver (a role of its own, distinct from operator and viewer) grants or denies it
through the saga tracker's API, which publishes `ApprovalDecided` on the same topic and key; the
machine then moves to the state for that answer, with a decision record naming the approver and
their reason. Nobody approves a request they caused (four eyes): `check_approver` is that rule,
used by the tracker's API and by the TestKit alike.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

APPROVAL_IDS = uuid.UUID("0b6f8f0e-51a4-4c9e-9f77-3f4f4f5c2d10")
REQUESTED = "dev.choreograph.ApprovalRequested"
DECIDED = "dev.choreograph.ApprovalDecided"


class ApprovalRefused(ValueError):
    """A decision the rules do not allow (the requester approving, an empty reason)."""


@dataclass(frozen=True)
class Approval:
    """What a state waits for: `granted` and `denied` are the states to go to. `requested_by`
    names who caused the request: a key of the machine's data holding an identity, or a
    function of the data (by default the service itself). `summary` tells the approver what
    they are approving."""

    granted: str
    denied: str
    requested_by: str | Callable[[dict[str, Any]], str] | None = None
    summary: Callable[[dict[str, Any]], str] | None = None

    def requester(self, data: dict[str, Any], service: str) -> str:
        if self.requested_by is None:
            return service
        if callable(self.requested_by):
            return str(self.requested_by(data))
        found = data.get(self.requested_by)
        if not isinstance(found, str) or not found:
            raise TypeError(
                f"the approval's requested_by names data key {self.requested_by!r}, which holds "
                f"{found!r}; the action entering the state must put the requester's identity there"
            )
        return found


def approval_id(service: str, machine: str, instance: str, state: str, seq: int) -> str:
    """The same entry into the same state gets the same id (a retry or a restore)."""
    return str(uuid.uuid5(APPROVAL_IDS, f"{service}|{machine}|{instance}|{state}|{seq}"))


def check_approver(requested_by: str, approver: str, reason: str) -> None:
    """Four eyes: the approver is somebody other than the requester, and says why."""
    if not approver:
        raise ApprovalRefused("an approval needs the approver's identity")
    if approver == requested_by:
        raise ApprovalRefused(
            f"{approver} caused this request and may not decide it; another approver must"
        )
    if not reason.strip():
        raise ApprovalRefused("say why: a decision needs a reason")
