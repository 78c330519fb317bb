"""`choreograph new service NAME`: scaffold a team service from the template.

Writes `<dir>/<package>/` (the service, its entry point) and `<tests>/<package>/test_service.py`
(a TestKit test that passes as generated). The template follows the reference services in
services/choreograph_examples: one Service, a handler per event type, a store, and emits through
the context.
It refuses to overwrite anything.
"""

from __future__ import annotations

import argparse
import keyword
import re
import sys
from pathlib import Path
from string import Template

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")

SERVICE = Template('''\
"""The $name team's processor.

Reacts to placed orders; replace the handler with the team's own rules. Contracts live in
schemas/avro; after changing them, `choreograph schemas codegen` regenerates the models.
"""

from __future__ import annotations

from choreograph import Context, Service
from choreograph_examples.contracts.orders import OrderPlaced

INPUTS = ["orders.events"]


def build(name: str = "$name") -> Service:
    service = Service(name, INPUTS, stores=["seen"])

    @service.handle(OrderPlaced)
    def on_order_placed(ctx: Context, event: OrderPlaced) -> None:
        seen = ctx.store("seen")
        count = (seen.get(ctx.key) or {}).get("orders", 0)
        seen.put(ctx.key, {"orders": count + 1, "last_total": str(event.total)})

    return service
''')

MAIN = Template('''\
"""Run the $name service until SIGTERM; settings from CHOREOGRAPH_* variables."""

from choreograph import ServiceConfig
from choreograph.observability.logs import configure_json_logging
from $package.service import build

if __name__ == "__main__":
    configure_json_logging()
    build().run(ServiceConfig.from_env())
''')

TEST = Template('''\
"""The $name service in the in-memory TestKit."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from choreograph import TestKit
from choreograph_examples.contracts.orders import OrderLine, OrderPlaced
from $package.service import build


def test_counts_orders_per_key() -> None:
    kit = TestKit(build())
    order = OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        customer_email="e@example.com",
        lines=[OrderLine(sku="MUG-1", quantity=1)],
        total=Decimal("12.50"),
        placed_at=datetime(2026, 5, 1, tzinfo=UTC),
    )
    kit.send(order, "o-1")
    kit.send(order, "o-1")
    assert kit.store("seen").get("o-1") == {"orders": 2, "last_total": "12.50"}
    assert kit.outputs == []
''')


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("new", help="scaffold new things from templates")
    commands = parser.add_subparsers(dest="command", required=True, metavar="WHAT")
    service = commands.add_parser("service", help="a team service and its test")
    service.add_argument("name", help="service name, e.g. loyalty or fraud-checks")
    service.add_argument("--dir", type=Path, default=Path("services"), help="where packages live")
    service.add_argument("--tests", type=Path, default=Path("tests/unit"), help="where tests live")
    service.set_defaults(run=run_new_service)


def package_name(name: str) -> str:
    package = name.replace("-", "_")
    if not NAME_RE.match(name) or keyword.iskeyword(package):
        raise ValueError(
            f"{name!r} is not a service name: use lower case letters, digits and dashes, "
            "starting with a letter (e.g. fraud-checks)"
        )
    return package


def run_new_service(args: argparse.Namespace) -> int:
    try:
        package = package_name(args.name)
    except ValueError as err:
        print(f"choreograph new: {err}", file=sys.stderr)
        return 2
    values = {"name": args.name, "package": package}
    files = {
        args.dir / package / "__init__.py": f'"""Team {args.name}."""\n',
        args.dir / package / "service.py": SERVICE.substitute(values),
        args.dir / package / "__main__.py": MAIN.substitute(values),
        args.tests / package / "__init__.py": "",
        args.tests / package / "test_service.py": TEST.substitute(values),
    }
    existing = [str(path) for path in files if path.exists()]
    if existing:
        print(f"choreograph new: would overwrite {', '.join(existing)}", file=sys.stderr)
        return 2
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")
    print(f"run it: python -m {package}   test it: pytest {args.tests / package}")
    return 0
