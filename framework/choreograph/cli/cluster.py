"""The Kafka and registry addresses every command that talks to a cluster takes: one flag each,
defaulting to the environment the local stack and the Helm charts set."""

from __future__ import annotations

import argparse
import os

from choreograph.testing.servers import BOOTSTRAP_ENV, REGISTRY_ENV

LOCAL_BOOTSTRAP = "127.0.0.1:9092"
LOCAL_REGISTRY = "http://127.0.0.1:8081/apis/ccompat/v7"


def add_bootstrap(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bootstrap", default=os.environ.get(BOOTSTRAP_ENV, LOCAL_BOOTSTRAP))


def add_registry(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--registry", default=os.environ.get(REGISTRY_ENV, LOCAL_REGISTRY))
