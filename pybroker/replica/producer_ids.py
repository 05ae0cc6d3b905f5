"""Producer id allocation: ids are handed out from blocks whose upper bound is persisted before use,
so a restart (even after kill -9) never hands out an id twice (Kafka's ProducerIdManager does the
same with blocks from the controller)."""
from __future__ import annotations

import os

BLOCK = 1000


class ProducerIdManager:
    def __init__(self, path: str | None):
        self.path = path
        self.next = 0
        self.limit = 0
        if path is not None and os.path.exists(path):
            with open(path, encoding="ascii") as fh:
                text = fh.read().strip()
            if text:
                self.next = self.limit = int(text)

    def next_id(self) -> int:
        if self.next >= self.limit:
            self._reserve(self.next + BLOCK)
        pid = self.next
        self.next += 1
        return pid

    def _reserve(self, limit: int) -> None:
        if self.path is not None:
            tmp = self.path + ".tmp"
            with open(tmp, "w", encoding="ascii") as fh:
                fh.write(f"{limit}\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        self.limit = limit
