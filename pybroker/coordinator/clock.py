"""Time and timers for the coordinator: a real clock over the event loop and a manual one for tests.

A `Clock` gives `now_ms()` (wall-clock milliseconds, as commit timestamps are) and
`call_later(delay_ms, fn) -> handle` (handle has `cancel()`). `ManualClock` only moves when a test
calls `advance(ms)`, firing due callbacks in deadline order with `now_ms()` set to each deadline,
so a scenario of session timeouts and rebalance delays runs in microseconds and deterministically.

`Timer` is Kafka's CoordinatorTimer: callbacks keyed by name (`"heartbeat-<group>-<member>"`);
scheduling a key again replaces its previous callback; `cancel_all()` on unload.
"""
from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time

log = logging.getLogger("pybroker.coordinator")


class LoopClock:
    """Wall-clock time; callbacks on the running asyncio loop."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)

    def call_later(self, delay_ms: float, fn):
        return asyncio.get_running_loop().call_later(max(0.0, delay_ms) / 1000.0, fn)


class _ManualHandle:
    __slots__ = ("cancelled",)

    def __init__(self):
        self.cancelled = False

    def cancel(self):
        self.cancelled = True


class ManualClock:
    """A clock that moves only when told to (tests)."""

    def __init__(self, start_ms: int = 1_700_000_000_000):
        self._now = start_ms
        self._queue = []
        self._seq = itertools.count()

    def now_ms(self) -> int:
        return self._now

    def call_later(self, delay_ms: float, fn):
        handle = _ManualHandle()
        heapq.heappush(self._queue, (self._now + max(0, int(delay_ms)), next(self._seq), fn, handle))
        return handle

    def advance(self, ms: int) -> int:
        """Move time forward by `ms`, running every callback that falls due; returns how many ran."""
        target = self._now + ms
        ran = 0
        while self._queue and self._queue[0][0] <= target:
            deadline, _, fn, handle = heapq.heappop(self._queue)
            if handle.cancelled:
                continue
            self._now = max(self._now, deadline)
            fn()
            ran += 1
        self._now = target
        return ran

    def pending(self) -> int:
        return sum(1 for entry in self._queue if not entry[3].cancelled)


class Timer:
    """Keyed one-shot timers over a clock (Kafka's CoordinatorTimer)."""

    def __init__(self, clock):
        self.clock = clock
        self._handles = {}

    def schedule(self, key: str, delay_ms: float, fn) -> None:
        """Run `fn()` after `delay_ms`, replacing any callback pending under `key`."""
        self.cancel(key)
        token = object()

        def fire():
            if self._handles.get(key, (None,))[0] is not token:
                return
            del self._handles[key]
            try:
                fn()
            except Exception:  # a timer must not take the loop down; the state stays as it was
                log.exception("coordinator timer %s failed", key)

        self._handles[key] = (token, self.clock.call_later(delay_ms, fire))

    def schedule_if_absent(self, key: str, delay_ms: float, fn) -> None:
        if key not in self._handles:
            self.schedule(key, delay_ms, fn)

    def cancel(self, key: str) -> None:
        entry = self._handles.pop(key, None)
        if entry is not None:
            entry[1].cancel()

    def is_scheduled(self, key: str) -> bool:
        return key in self._handles

    def cancel_all(self) -> None:
        for _, handle in self._handles.values():
            handle.cancel()
        self._handles.clear()

    def __len__(self):
        return len(self._handles)
