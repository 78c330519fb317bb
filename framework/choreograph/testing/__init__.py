"""Test support: the in-memory TestKit, replays of captured incidents, and locating real servers
for integration tests.

A captured incident becomes a regression test in a few lines:

    from choreograph.testing import replay

    def test_the_march_outage_no_longer_loses_payments() -> None:
        report = replay("tests/captures/march-outage.capture", build())
        assert report.differences == [] and report.dead_letters == []
"""

from __future__ import annotations

from pathlib import Path

from choreograph.replay.capture import Capture
from choreograph.replay.run import ReplayReport
from choreograph.replay.run import replay as _replay
from choreograph.runtime.service import Service


def replay(capture: Capture | str | Path, service: Service, *, partitions: int = 4) -> ReplayReport:
    """Feed a capture (a file or a loaded one) to `service` in the TestKit; see `replay.run`."""
    loaded = capture if isinstance(capture, Capture) else Capture.read(Path(capture))
    return _replay(loaded, service, partitions=partitions)


__all__ = ["ReplayReport", "replay"]
