"""The signaling server's limits per client (remote IP address): rates, open connections, rooms held.

Behind a reverse proxy every client has the proxy's address: then these limits apply to all clients together
(run the server with larger limits there, or let the proxy limit per client).
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Limits:
    """The server's limits; each applies per client address unless named otherwise."""

    #: Rooms open at once on the whole server.
    max_rooms: int = 100
    #: Rooms one client may hold (be in) at once: idle joins cannot take every slot.
    rooms_per_client: int = 8
    #: Websocket connections one client may have open at once, joined or not.
    connections_per_client: int = 16
    #: New connections a client may open: a burst, then this many a second.
    connect_burst: int = 20
    connect_rate: float = 1.0
    #: Messages one connection may send after joining: a burst, then this many a second (a call needs 2).
    message_burst: int = 8
    message_rate: float = 0.5
    #: Seconds a new connection has to send its join.
    join_timeout_s: float = 10.0
    #: Seconds a peer may wait alone in its room before it is sent away.
    lonely_timeout_s: float = 600.0


class TokenBucket:
    """``burst`` events at once, refilled at ``rate`` a second."""

    def __init__(self, burst: int, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.rate, self.clock = burst, rate, clock
        self._tokens = float(burst)
        self._at = clock()

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now

    def take(self) -> bool:
        """Spend one token; False (nothing spent) when there is none."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self.burst


@dataclass
class Client:
    """What one client address holds now."""

    connects: TokenBucket
    connections: int = 0
    rooms: set[str] = field(default_factory=set)


#: The client table is swept of forgotten addresses when it grows past this many.
SWEEP_AT = 1024


class ClientTable:
    """Per-address bookkeeping; an address is forgotten once it holds nothing and its bucket is full again."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._clients: dict[str, Client] = {}

    def connect(self, address: str) -> str | None:
        """Count a new connection; the reason to refuse it, or None."""
        if len(self._clients) >= SWEEP_AT:
            self._sweep()
        client = self._clients.setdefault(address, Client(TokenBucket(self.limits.connect_burst,
                                                                      self.limits.connect_rate)))
        if client.connections >= self.limits.connections_per_client:
            return f"too many connections from one client (limit {self.limits.connections_per_client})"
        if not client.connects.take():
            return f"too many new connections (limit {self.limits.connect_rate:g} a second)"
        client.connections += 1
        return None

    def disconnect(self, address: str) -> None:
        self._clients[address].connections -= 1
        self._sweep(address)

    def _sweep(self, *addresses: str) -> None:
        """Forget the given addresses (or all) that hold nothing and could connect at full burst again."""
        for address in addresses or list(self._clients):
            client = self._clients[address]
            if client.connections <= 0 and not client.rooms and client.connects.full:
                del self._clients[address]

    def rooms(self, address: str) -> set[str]:
        """The rooms an address is in (a live view: add and discard on it)."""
        return self._clients[address].rooms

    def __len__(self) -> int:
        return len(self._clients)
