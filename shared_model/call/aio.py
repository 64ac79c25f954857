"""Small asyncio helpers both peers use: a newest-item mailbox and SIGINT/SIGTERM as an event."""
from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """A one-item mailbox: ``put`` replaces what has not been taken yet (the newest wins), ``get`` waits.

    Only for use on the event loop thread (threads hand items over with ``loop.call_soon_threadsafe``).
    After ``close`` and once empty, ``get`` returns None.
    """

    def __init__(self) -> None:
        self._item: T | None = None
        self._closed = False
        self._ready = asyncio.Event()
        self.replaced = 0

    def put(self, item: T) -> None:
        if self._item is not None:
            self.replaced += 1
        self._item = item
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> T | None:
        while self._item is None and not self._closed:
            self._ready.clear()
            await self._ready.wait()
        item, self._item = self._item, None
        return item

    @property
    def empty(self) -> bool:
        return self._item is None


@contextlib.contextmanager
def stop_on_signals(event: asyncio.Event) -> Iterator[None]:
    """Set ``event`` on SIGINT or SIGTERM while inside the block (then restore the default handling)."""
    loop = asyncio.get_running_loop()
    sigs = (signal.SIGINT, signal.SIGTERM)
    for sig in sigs:
        loop.add_signal_handler(sig, event.set)
    try:
        yield
    finally:
        for sig in sigs:
            loop.remove_signal_handler(sig)


class Interrupted(Exception):
    """The stop event was set while waiting."""


async def unless_stopped(aw: Awaitable[T], stop: asyncio.Event) -> T:
    """Await ``aw``; raise ``Interrupted`` (cancelling it) if ``stop`` is set first."""
    task = asyncio.ensure_future(aw)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([task, stopper], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
        if not task.done():
            task.cancel()
    if not task.done():
        raise Interrupted
    return task.result()
