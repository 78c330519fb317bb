"""Peers and the ceiling for `python -m bench`; each runs as its own process."""

from __future__ import annotations

import argparse


def contender_args(*required: str) -> argparse.Namespace:
    """The flags the benchmark passes every contender; unknown ones are someone else's."""
    parser = argparse.ArgumentParser(allow_abbrev=False)
    for flag in required:
        parser.add_argument(flag, required=True)
    parser.add_argument("--commit-interval", type=float, default=1.0)
    args, _ = parser.parse_known_args()
    return args
