"""`choreograph acls MODULE:ATTR`: the Kafka ACLs a service needs, and no more, derived from
its declared topology (see choreograph.governance.acls)."""

from __future__ import annotations

import argparse
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from choreograph.cli.check import load
from choreograph.cli.cluster import add_bootstrap, reached
from choreograph.governance.acls import (
    as_json,
    bindings,
    derive,
    helm_values,
    kafka_acls_commands,
    strimzi_user,
)
from choreograph.runtime.errors import TopologyError


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = groups.add_parser("acls", help="least-privilege Kafka ACLs of a service")
    parser.add_argument(
        "service", metavar="MODULE:ATTR", help="e.g. choreograph_examples.payments.service:build"
    )
    parser.add_argument("--principal", help="default: User:<service name>")
    parser.add_argument(
        "--format", choices=("kafka-acls", "json", "strimzi", "helm"), default="kafka-acls"
    )
    parser.add_argument("--cluster", default="my-cluster", help="Strimzi cluster label")
    parser.add_argument(
        "--apply", action="store_true", help="create them on --bootstrap (as an admin principal)"
    )
    add_bootstrap(parser)
    parser.set_defaults(run=run_acls)


def run_acls(args: argparse.Namespace) -> int:
    try:
        service, _ = load(args.service)
    except (ImportError, AttributeError, TopologyError, ValueError) as err:
        print(f"choreograph acls: {err}", file=sys.stderr)
        return 2
    acls = derive(service, args.principal)
    if args.apply:
        config = reached(args, "acls")
        if config is None:
            return 2
        admin = AdminClient(config.client_conf())
        try:
            for future in admin.create_acls(bindings(acls), request_timeout=30).values():
                future.result()
        except KafkaException as err:
            print(
                f"choreograph acls: {config.bootstrap_servers} refused: {err.args[0]}; "
                "apply them as a principal allowed to alter the cluster's ACLs "
                "(CHOREOGRAPH_SASL_USERNAME, CHOREOGRAPH_SASL_PASSWORD)",
                file=sys.stderr,
            )
            return 1
        print(f"created {len(acls)} ACL(s) for {acls[0].principal} on {config.bootstrap_servers}")
        return 0
    if args.format == "json":
        print(as_json(acls))
    elif args.format in ("strimzi", "helm"):
        user = (args.principal or service.name).removeprefix("User:")
        render = strimzi_user if args.format == "strimzi" else helm_values
        print(render(acls, user, args.cluster), end="")
    else:
        print(kafka_acls_commands(acls))
    return 0
