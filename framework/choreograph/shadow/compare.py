"""Comparing a shadow's outputs with the live service's, key by key.

Both sides handle the same inputs at their own pace, so a key is compared once it has settled:
both sides produced for it and nothing more came for `settle_s`, or one side alone produced and
the other stayed silent for `settle_s`. Outputs are compared as what a consumer sees: per output
topic, the multiset of (event type, fields), leaving out fields that differ by nature between
two runs (ids drawn per run, times of handling), which the caller names."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Seen:
    """One output record, as compared: its event type and its fields (those compared)."""

    topic: str
    key: str
    type: str
    fields: str  # canonical JSON of the compared fields


@dataclass
class Difference:
    key: str
    topic: str
    kind: str  # "only-live", "only-shadow", "fields", "count"
    live: list[dict[str, Any]]
    shadow: list[dict[str, Any]]
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "topic": self.topic, "kind": self.kind, "detail": self.detail,
                "live": self.live, "shadow": self.shadow}  # fmt: skip


@dataclass
class _Pending:
    live: list[Seen] = field(default_factory=list)
    shadow: list[Seen] = field(default_factory=list)
    last: float = 0.0


class Comparison:
    def __init__(self, ignore: set[str] | None = None, settle_s: float = 10.0) -> None:
        self.ignore = set(ignore or ())
        self.settle_s = settle_s
        self.pending: dict[str, _Pending] = {}
        self.compared = 0
        self.same = 0
        self.differences: list[Difference] = []
        self.differing: set[str] = set()

    def seen(self, side: str, topic: str, key: str, event_type: str,
             values: dict[str, Any], at: float) -> None:  # fmt: skip
        """An output of `side` ("live" or "shadow"), `topic` being the live topic's name."""
        kept = {k: v for k, v in sorted(values.items()) if k not in self.ignore}
        record = Seen(topic, key, event_type, json.dumps(kept, default=str, sort_keys=True))
        pending = self.pending.setdefault(key, _Pending())
        getattr(pending, side).append(record)
        pending.last = at

    def settle(self, now: float) -> list[Difference]:
        """Compare the keys that have settled by `now`; return the new differences."""
        found: list[Difference] = []
        for key in [k for k, p in self.pending.items() if now - p.last >= self.settle_s]:
            pending = self.pending.pop(key)
            self.compared += 1
            new = self._compare(key, pending)
            if new:
                self.differing.add(key)
                found += new
            else:
                self.same += 1
        self.differences += found
        return found

    def _compare(self, key: str, pending: _Pending) -> list[Difference]:
        found = []
        topics = sorted({s.topic for s in (*pending.live, *pending.shadow)})
        for topic in topics:
            live = Counter((s.type, s.fields) for s in pending.live if s.topic == topic)
            shadow = Counter((s.type, s.fields) for s in pending.shadow if s.topic == topic)
            if live == shadow:
                continue
            shown_live = [_shown(t, f) for t, f in sorted(live.elements())]
            shown_shadow = [_shown(t, f) for t, f in sorted(shadow.elements())]
            if not shadow:
                kind, detail = (
                    "only-live",
                    f"{sum(live.values())} output(s) the shadow did not make",
                )
            elif not live:
                kind, detail = "only-shadow", f"{sum(shadow.values())} output(s) live did not make"
            elif sorted(t for t, _ in live.elements()) != sorted(t for t, _ in shadow.elements()):
                kind = "count"
                detail = (f"types live {sorted(t for t, _ in live.elements())}, "
                          f"shadow {sorted(t for t, _ in shadow.elements())}")  # fmt: skip
            else:
                kind, detail = "fields", _fields_detail(shown_live, shown_shadow)
            found.append(Difference(key, topic, kind, shown_live, shown_shadow, detail))
        return found


def _shown(event_type: str, fields: str) -> dict[str, Any]:
    return {"type": event_type, **json.loads(fields)}


def _fields_detail(live: list[dict[str, Any]], shadow: list[dict[str, Any]]) -> str:
    """Which fields differ, with both values, over the outputs paired in order."""
    parts = []
    for a, b in zip(live, shadow, strict=False):
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name):
                parts.append(f"{a['type'].rsplit('.', 1)[-1]}.{name}: live {a.get(name)!r}, "
                             f"shadow {b.get(name)!r}")  # fmt: skip
    return "; ".join(parts) or "the same fields in another order"
