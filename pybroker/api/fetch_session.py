"""Fetch sessions (KIP-227): incremental fetch requests and responses.

A client opens a session with a full fetch at epoch 0; the broker answers with a session id.
Later requests (epoch 1, 2, ...) name only the partitions whose fetch position changed and the
ones to forget; the response names only partitions with something new (records, a moved high
watermark / last stable offset / log start offset, or an error). Epoch -1 is a sessionless full
fetch (and closes the named session). Errors: FETCH_SESSION_ID_NOT_FOUND (70) for an unknown id,
INVALID_FETCH_SESSION_EPOCH (71) for an epoch out of step.
"""
from __future__ import annotations

import collections
import itertools
import random
from dataclasses import dataclass

INITIAL_EPOCH = 0
FINAL_EPOCH = -1
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71


@dataclass
class SessionPartition:
    """What a session remembers of one partition (key = (topic name or id, partition))."""
    fetch_offset: int
    max_bytes: int
    log_start_offset: int = -1      # follower's; -1 for consumers
    current_leader_epoch: int = -1
    last_fetched_epoch: int = -1
    high_watermark: int = -1        # last values sent, to detect changes
    last_stable_offset: int = -1
    sent_log_start_offset: int = -1

    def changed(self, high_watermark, last_stable_offset, log_start_offset) -> bool:
        """Record the values about to be sent; True when any differ from the last ones sent."""
        moved = (high_watermark != self.high_watermark or last_stable_offset != self.last_stable_offset
                 or log_start_offset != self.sent_log_start_offset)
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.sent_log_start_offset = log_start_offset
        return moved


class FetchSession:
    def __init__(self, session_id: int):
        self.id = session_id
        self.epoch = 1  # the epoch the next incremental request must carry
        self.partitions: "collections.OrderedDict" = collections.OrderedDict()


class FetchSessionError(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


class FetchContext:
    """The partitions one fetch request reads, and which of them its response must name."""

    def __init__(self, session: FetchSession | None, partitions, incremental: bool):
        self.session = session
        self.partitions = partitions  # OrderedDict key -> SessionPartition
        self.incremental = incremental

    @property
    def session_id(self) -> int:
        return self.session.id if self.session is not None else 0

    def include(self, key, has_records: bool, error: int, high_watermark: int,
                last_stable_offset: int, log_start_offset: int) -> bool:
        part = self.partitions[key]
        moved = part.changed(high_watermark, last_stable_offset, log_start_offset)
        if not self.incremental:
            return True
        return has_records or error != 0 or moved


class FetchSessionCache:
    """At most `max_slots` sessions, least recently used evicted first."""

    def __init__(self, max_slots: int = 1000):
        self.max_slots = max_slots
        self.sessions: "collections.OrderedDict[int, FetchSession]" = collections.OrderedDict()
        self._ids = itertools.count(random.randint(1, 1 << 20))

    def _new_id(self) -> int:
        while True:
            sid = next(self._ids) & 0x7FFFFFFF
            if sid and sid not in self.sessions:
                return sid

    def new_context(self, session_id: int, epoch: int, updates, forgotten) -> FetchContext:
        """updates: iterable of (key, SessionPartition) from the request, in request order;
        forgotten: iterable of keys. Raises FetchSessionError for a bad id/epoch."""
        if epoch == FINAL_EPOCH or epoch == INITIAL_EPOCH:
            if session_id:
                self.sessions.pop(session_id, None)
            parts = collections.OrderedDict(updates)
            if epoch == FINAL_EPOCH or self.max_slots == 0:
                return FetchContext(None, parts, incremental=False)
            session = FetchSession(self._new_id())
            session.partitions = parts
            self.sessions[session.id] = session
            while len(self.sessions) > self.max_slots:
                self.sessions.popitem(last=False)
            return FetchContext(session, parts, incremental=False)
        session = self.sessions.get(session_id)
        if session is None:
            raise FetchSessionError(FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            raise FetchSessionError(INVALID_FETCH_SESSION_EPOCH)
        self.sessions.move_to_end(session_id)
        for key in forgotten:
            session.partitions.pop(key, None)
        for key, upd in updates:
            old = session.partitions.get(key)
            if old is not None:
                upd.high_watermark = old.high_watermark
                upd.last_stable_offset = old.last_stable_offset
                upd.sent_log_start_offset = old.sent_log_start_offset
            session.partitions[key] = upd
        session.epoch = epoch + 1 if epoch < 0x7FFFFFFF else 1
        return FetchContext(session, session.partitions, incremental=True)

    def close(self, session_id: int) -> None:
        self.sessions.pop(session_id, None)
