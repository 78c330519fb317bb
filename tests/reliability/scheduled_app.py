"""A service with a schedule firing every minute, for the kill -9 test of schedules. Each
occurrence emits one event naming it; with SCH_MARKERS set, the firing instance first leaves a
marker file and then takes SCH_SLEEP seconds, so a test can kill it in the middle of a firing.
Topic names and the service's name come from the environment."""

from __future__ import annotations

import os
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from choreograph import Context, Service
from choreograph_examples.contracts.payments import PaymentAuthorized


def build() -> Service:
    inputs, out = os.environ["SCH_INPUT"], os.environ["SCH_OUTPUT"]
    service = Service(os.environ["SCH_SERVICE"], [inputs], outputs=[out])

    @service.schedule("every-minute", cron="* * * * *", tz="Europe/Berlin")
    def tick(ctx: Context, occurrence: datetime) -> None:
        markers = os.environ.get("SCH_MARKERS")
        if markers:
            who = os.environ.get("CHOREOGRAPH_INSTANCE_ID", "?")
            (Path(markers) / f"{occurrence:%H%M}-{who}").write_text(str(os.getpid()))
            time.sleep(float(os.environ.get("SCH_SLEEP", "0")))
        ctx.emit(PaymentAuthorized(order_id=occurrence.isoformat(), payment_id=ctx.key,
                                   amount=Decimal("1.00")), topic=out)  # fmt: skip

    return service


if __name__ == "__main__":
    build().run()
