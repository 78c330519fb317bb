"""Failed attempts at the trace and action API, per client, in fixed windows.

A client is the authenticated principal where the request names one (a valid token), so a
signed-in operator is limited by their own failures only and never locked out by anonymous
ones; otherwise it is the client's address: the peer's, or, when the peer is one of the
configured trusted proxies (an ingress), the address that proxy reports in X-Forwarded-For.
Without trusted proxies every client behind an ingress would share the ingress's address, and
one guesser would lock everyone out; X-Forwarded-For from anyone else is ignored, since a
client could name any address there.

Someone guessing tokens, or a script sending broken requests in a loop, must neither fill the
audit topic nor keep the API busy. Within a window, a client's first failed attempt is audited at
once with its detail; later anonymous ones are counted and audited as one entry when the window
closes. Failures of a known token holder are evidence about that person and are audited one by
one, but they count towards the limit too. Past `limit` failures in a window the client is
refused (429) until the window ends, before its request is read.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Window:
    opened: float
    failures: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    refused: int = 0


@dataclass(frozen=True)
class Closed:
    """A window that held more failures than the one audited at once."""

    client: str
    seconds: float
    unaudited: dict[str, int]  # outcome -> count, after the first
    refused: int  # requests answered 429 without being read


class FailedAttempts:
    def __init__(
        self,
        limit: int = 10,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[str, _Window] = {}
        self._closed: list[Closed] = []
        self._lock = threading.Lock()

    def _window(self, client: str, now: float) -> _Window:
        window = self._windows.get(client)
        if window is not None and now - window.opened >= self.window_s:
            self._close(client, window)
            window = None
        if window is None:
            window = self._windows[client] = _Window(now)
        return window

    def _close(self, client: str, window: _Window) -> None:
        del self._windows[client]
        extra = dict(window.outcomes)
        if extra or window.refused:
            self._closed.append(Closed(client, self.window_s, extra, window.refused))

    def retry_after(self, client: str) -> float:
        """Seconds until `client` may try again; 0 when it may now (a refusal is counted)."""
        now = self.clock()
        with self._lock:
            window = self._windows.get(client)
            if window is None or window.failures < self.limit:
                return 0.0
            left = self.window_s - (now - window.opened)
            if left <= 0:
                self._close(client, window)
                return 0.0
            window.refused += 1
            return left

    def failed(self, client: str, outcome: str, *, anonymous: bool = True) -> bool:
        """Count a failed attempt; True when it should be audited now: the window's first, or
        any of a known token holder. The others are left for the window's one entry."""
        now = self.clock()
        with self._lock:
            window = self._window(client, now)
            window.failures += 1
            if window.failures == 1 or not anonymous:
                return True
            window.outcomes[outcome] = window.outcomes.get(outcome, 0) + 1
            return False

    def closed(self, *, all_windows: bool = False) -> list[Closed]:
        """Windows that have ended (or all, when stopping) with failures not yet audited,
        each returned once."""
        now = self.clock()
        with self._lock:
            for client, window in list(self._windows.items()):
                if all_windows or now - window.opened >= self.window_s:
                    self._close(client, window)
            found, self._closed = self._closed, []
        return found


class ClientKeys:
    """Whom a failed attempt counts against: `principal:<name>` or `address:<ip>`."""

    def __init__(self, trusted_proxies: Sequence[str] = ()) -> None:
        """`trusted_proxies`: addresses or networks (CIDR) of the proxies in front of the API;
        ValueError, naming the entry, for one that is neither."""
        self.trusted: list[Network] = []
        for entry in trusted_proxies:
            try:
                self.trusted.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted proxy {entry!r} is not an address or a network such as "
                    "10.0.0.0/8 or 2001:db8::/32"
                ) from None

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def address(self, peer: str, forwarded_for: str | None) -> str:
        """The client's address: the peer's; behind trusted proxies, the right-most address of
        X-Forwarded-For that is not one of them (the one the outermost trusted proxy saw)."""
        if not forwarded_for or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def key(self, peer: str, forwarded_for: str | None, principal: str | None) -> str:
        if principal:
            return f"principal:{principal}"
        return f"address:{self.address(peer, forwarded_for)}"
