"""Settling a step in doubt: the owner of a step answers "void it if you have not done it".

When a step with a compensation times out before it reported, nobody but its owner knows
whether it happened. The saga tracker does not guess: it sends the step's settle command (say
`VoidPayment`), and the owner answers from its own state, in the same transaction as the state
change, so the answer can never disagree with what the service does afterwards:

- not done yet: it is voided for good (a request for it that comes later is refused), and the
  answer is the definition's `voided_on` event; the tracker then compensates what completed;
- already done: the answer is the definition's `done_on` event; the tracker goes on, late.

    payment = service.settles(
        "payment",
        VoidPayment,
        voided=lambda ctx, cmd: PaymentVoided(order_id=ctx.key, reason=cmd.reason),
        refused=lambda ctx, cmd, done: PaymentVoidRefused(order_id=ctx.key, **done),
    )

    @service.handle(OrderPlaced)
    def authorise(ctx: Context, event: OrderPlaced) -> None:
        if payment.voided(ctx):
            ctx.emit(PaymentFailed(order_id=ctx.key, reason="voided: too late"))
            return
        ...  # charge, emit PaymentAuthorized
        payment.done(ctx, payment_id=payment_id)

The state is a keyed store of the service (`settle.<step>`, changelog-backed like any other),
so it restores with the rest and the TestKit runs it as production does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from choreograph.contracts.event import Event
from choreograph.runtime.errors import VoidedStep

if TYPE_CHECKING:
    from choreograph.runtime.context import Context
    from choreograph.runtime.service import Service

C = TypeVar("C", bound=Event)
VOIDED = "voided"
DONE = "done"


class Settlement(Generic[C]):
    """One step's settlement state per business key: done, voided, or neither yet."""

    def __init__(
        self,
        service: Service,
        step: str,
        command: type[C],
        voided: Callable[[Context, C], Event],
        refused: Callable[[Context, C, dict[str, Any]], Event],
        topic: str | None = None,
    ) -> None:
        self.step = step
        self.store = service.store(f"settle.{step}")
        self._voided_answer = voided
        self._refused_answer = refused
        service.handle(command, topic=topic)(self._settle)

    def _settle(self, ctx: Context, command: C) -> None:
        store = ctx.store(self.store)
        state: dict[str, Any] | None = store.get(ctx.key)
        if state is not None and state.get("status") == DONE:
            ctx.emit(self._refused_answer(ctx, command, dict(state.get("details") or {})))
            return
        if state is None:
            store.put(ctx.key, {"status": VOIDED})
        # Answered every time, so a repeated command (an operator's retry) is answered too.
        ctx.emit(self._voided_answer(ctx, command))

    def voided(self, ctx: Context) -> bool:
        """Whether the step for `ctx.key` was voided: then it must not be done now."""
        state = ctx.store(self.store).get(ctx.key)
        return state is not None and state.get("status") == VOIDED

    def done(self, ctx: Context, **details: Any) -> None:
        """The step for `ctx.key` happened (or was settled otherwise, such as declined): a void
        asked later is refused with `details`. Raises if it was voided (check `voided` first)."""
        store = ctx.store(self.store)
        state = store.get(ctx.key)
        if state is not None and state.get("status") == VOIDED:
            raise VoidedStep(
                f"step {self.step} for {ctx.key} was voided; check {self.step}.voided(ctx) "
                "before doing it, and refuse the request instead"
            )
        store.put(ctx.key, {"status": DONE, "details": details})
