"""Pacing a service's calls to a partner (a payment provider, a carrier's API) to a declared rate.

    service.partner("payment-provider", per_second=20)

    @service.handle(OrderPlaced)
    def charge(ctx: Context, event: OrderPlaced) -> None:
        ctx.pace("payment-provider")  # waits for this call's turn
        provider.charge(...)

The rate holds for the whole service, however many instances run: each partition task gets an
equal share of it (`per_second` divided by the partitions), as Kafka Streams tasks share work,
so no instance needs to know the others. A handler that calls waits for its task's next turn
(turns are handed out evenly, one every `partitions / per_second` seconds); waiting keeps the
record in hand, so a partner that is slow to allow calls slows the partition, never skips a
record. The TestKit records the waits instead of sleeping (`kit.paced`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from choreograph.runtime.errors import TopologyError


@dataclass(frozen=True)
class Partner:
    name: str
    per_second: float


class Pacer:
    """One partition task's turns for one partner: each call takes the next free turn."""

    def __init__(
        self,
        partner: Partner,
        partitions: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.partner = partner
        self.spacing = max(partitions, 1) / partner.per_second
        self.clock = clock
        self.sleep = sleep
        self.next_turn = 0.0

    def turn(self) -> float:
        """Wait for the next turn; the seconds waited."""
        now = self.clock()
        turn = max(now, self.next_turn)
        self.next_turn = turn + self.spacing
        waited = turn - now
        if waited > 0:
            self.sleep(waited)
        return waited


def checked_partner(service: str, name: str, per_second: float) -> Partner:
    if not name:
        raise TopologyError(f"{service}: a partner needs a name")
    if not per_second > 0:
        raise TopologyError(
            f"{service}: partner {name!r} needs per_second > 0 (calls a second, at most)"
        )
    return Partner(name, float(per_second))


def undeclared(service: str, name: str, known: list[str]) -> TopologyError:
    return TopologyError(
        f"{service}: ctx.pace({name!r}) names a partner the service does not declare: add "
        f"service.partner({name!r}, per_second=...) (declared: {', '.join(known) or 'none'})"
    )
