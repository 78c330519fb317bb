"""How every checking command ends: print findings, summarise, choose the exit code.

0 clean (warnings allowed), 1 an error finding (breaking change, policy error), 2 unreadable input.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from choreograph.contracts.diagnostics import Diagnostic, render

OK, BREAKING, UNREADABLE = 0, 1, 2


def finish(diagnostics: Sequence[Diagnostic], unreadable: Sequence[Diagnostic], fmt: str) -> int:
    everything = [*unreadable, *diagnostics]
    if everything:
        print(render(everything, fmt))
    if fmt == "text":
        errors = sum(d.severity == "error" for d in everything)
        warnings = sum(d.severity == "warning" for d in everything)
        print(f"{errors} error(s), {warnings} warning(s)", file=sys.stderr)
    if unreadable:
        return UNREADABLE
    return BREAKING if any(d.severity == "error" for d in diagnostics) else OK
