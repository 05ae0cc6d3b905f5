"""Delayed operations (Kafka's purgatory), as futures keyed by partition.

A long-poll Fetch that has not reached min_bytes waits on the partitions it reads; an append to
any of them wakes it (a cheap set of futures per key, no timers per partition). The waiter then
re-reads and either answers or waits again until max_wait_ms runs out.
"""
from __future__ import annotations

import asyncio


class Purgatory:
    def __init__(self):
        self._watchers: dict = {}  # key -> set of futures

    def watch(self, keys) -> asyncio.Future:
        """A future that completes the next time any of `keys` is notified."""
        fut = asyncio.get_running_loop().create_future()
        for key in keys:
            self._watchers.setdefault(key, set()).add(fut)
        fut.add_done_callback(lambda f, ks=tuple(keys): self._forget(f, ks))
        return fut

    def _forget(self, fut, keys):
        for key in keys:
            s = self._watchers.get(key)
            if s is not None:
                s.discard(fut)
                if not s:
                    del self._watchers[key]

    def notify(self, key) -> None:
        s = self._watchers.get(key)
        if s:
            for fut in list(s):
                if not fut.done():
                    fut.set_result(key)

    def waiting(self, key) -> int:
        return len(self._watchers.get(key, ()))

    async def wait(self, keys, timeout: float) -> bool:
        """Wait until one of `keys` is notified (True) or `timeout` seconds pass (False)."""
        if timeout <= 0:
            return False
        fut = self.watch(keys)
        try:
            await asyncio.wait_for(fut, timeout)
            return True
        except asyncio.TimeoutError:
            return False
        finally:
            if not fut.done():
                fut.cancel()
