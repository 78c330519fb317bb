"""Choosing instances through the saga tracker's trace API, and where their events are.

The tracker lists instances by process, status and business key; each instance's timeline names
where every event on it was read (`origin`, topic/partition/offset), so a capture fetches those
records directly instead of scanning topics."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from choreograph.runtime.context import Origin


@dataclass(frozen=True)
class TrackedInstance:
    correlation_id: str
    process: str
    status: str
    started_at: datetime
    origins: list[Origin] = field(default_factory=list)  # "" origins (older entries) left out


class TrackerQuery:
    """A read-only client of one tracker's trace API (`token`: a bearer token that may read)."""

    def __init__(self, url: str, token: str | None = None, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s

    def _get(self, path: str) -> Any:
        request = urllib.request.Request(f"{self.url}{path}")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
            return json.load(reply)

    def instances(
        self,
        *,
        process: str | None = None,
        status: str | None = None,
        business_key: str | None = None,
        started_since: datetime | None = None,
        started_until: datetime | None = None,
    ) -> list[TrackedInstance]:
        """The instances matching the query, started within the range, with their timelines'
        record coordinates."""
        wanted = {"process": process, "status": status, "business_key": business_key}
        query = urllib.parse.urlencode({k: v for k, v in wanted.items() if v})
        found = []
        for item in self._get(f"/api/instances?{query}"):
            started = datetime.fromisoformat(item["started_at"])
            if started_since is not None and started < started_since:
                continue
            if started_until is not None and started > started_until:
                continue
            found.append(self.instance(item["correlation_id"], item["process"]))
        return found

    def instance(self, correlation_id: str, process: str | None = None) -> TrackedInstance:
        path = f"/api/instances/{urllib.parse.quote(correlation_id, safe='')}"
        trace = self._get(path + (f"?process={urllib.parse.quote(process)}" if process else ""))
        origins = [Origin.parse(e["origin"]) for e in trace["timeline"] if e.get("origin")]
        return TrackedInstance(
            trace["correlation_id"],
            trace["process"],
            trace["status"],
            datetime.fromisoformat(trace["started_at"]),
            origins,
        )
