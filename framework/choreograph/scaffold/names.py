"""Names a scaffold accepts: what becomes a distribution, a package and a service."""

from __future__ import annotations

import keyword
import re

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class BadName(ValueError):
    """A name a scaffold cannot use; says what a good one looks like."""


def package_name(name: str) -> str:
    """`fraud-checks` -> `fraud_checks`; BadName for anything else than dashed lower case."""
    package = name.replace("-", "_")
    if not NAME_RE.match(name) or keyword.iskeyword(package):
        raise BadName(
            f"{name!r} is not a usable name: use lower case letters, digits and dashes, "
            "starting with a letter (e.g. fraud-checks)"
        )
    return package
