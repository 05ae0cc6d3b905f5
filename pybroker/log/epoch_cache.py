"""LeaderEpochFileCache: (leader epoch -> first offset of that epoch), persisted in
`leader-epoch-checkpoint`. Serves OffsetForLeaderEpoch and the epoch of an offset."""
import bisect

UNDEFINED_EPOCH = -1
UNDEFINED_EPOCH_OFFSET = -1


class LeaderEpochFileCache:
    def __init__(self, checkpoint=None, entries=()):
        self.checkpoint = checkpoint          # LeaderEpochCheckpointFile or None (in memory)
        self._epochs = []                     # ascending epochs
        self._offsets = []                    # start offsets, same order
        for epoch, offset in entries:
            self._append(epoch, offset)

    @classmethod
    def load(cls, checkpoint):
        return cls(checkpoint, checkpoint.read() if checkpoint is not None else ())

    # ---- reads ----------------------------------------------------------------------------

    @property
    def entries(self):
        return list(zip(self._epochs, self._offsets))

    def is_empty(self):
        return not self._epochs

    @property
    def latest_epoch(self):
        return self._epochs[-1] if self._epochs else None

    @property
    def earliest_entry(self):
        return (self._epochs[0], self._offsets[0]) if self._epochs else None

    def epoch_for_offset(self, offset):
        """The epoch whose range holds `offset`, or None."""
        i = bisect.bisect_right(self._offsets, offset) - 1
        return self._epochs[i] if i >= 0 else None

    def end_offset_for(self, requested_epoch, log_end_offset):
        """(epoch, end_offset) as Kafka's endOffsetFor: the start offset of the first epoch after
        `requested_epoch`, or the log end offset when it is the latest epoch."""
        if requested_epoch == UNDEFINED_EPOCH or not self._epochs:
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if requested_epoch == self._epochs[-1]:
            return requested_epoch, log_end_offset
        higher = bisect.bisect_right(self._epochs, requested_epoch)
        if higher == len(self._epochs):
            return UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET
        if higher == 0:
            return requested_epoch, self._offsets[0]
        return self._epochs[higher - 1], self._offsets[higher]

    # ---- updates (each returns True when the entries changed; the log then persists them) ----

    def assign(self, epoch, start_offset):
        """Record that `epoch` starts at `start_offset`; drops conflicting later entries."""
        if epoch < 0:
            return False
        if self._epochs and self._epochs[-1] == epoch and start_offset >= self._offsets[-1]:
            return False
        while self._epochs and (self._epochs[-1] >= epoch or self._offsets[-1] >= start_offset):
            self._epochs.pop()
            self._offsets.pop()
        self._append(epoch, start_offset)
        return True

    def _append(self, epoch, offset):
        self._epochs.append(epoch)
        self._offsets.append(offset)

    def truncate_from_end(self, end_offset):
        """Drop entries starting at or after end_offset."""
        changed = False
        while self._offsets and self._offsets[-1] >= end_offset:
            self._epochs.pop()
            self._offsets.pop()
            changed = True
        return changed

    def truncate_from_start(self, start_offset):
        """Drop entries wholly before start_offset; the entry covering it now starts there."""
        i = bisect.bisect_right(self._offsets, start_offset) - 1
        if i < 0 or (i == 0 and self._offsets[0] == start_offset):
            return False
        del self._epochs[:i]
        del self._offsets[:i]
        self._offsets[0] = start_offset
        return True

    def clear(self):
        changed = bool(self._epochs)
        self._epochs.clear()
        self._offsets.clear()
        return changed

    def encode(self):
        from pybroker.log.checkpoint import LeaderEpochCheckpointFile
        return LeaderEpochCheckpointFile.encode(self.entries)

    def persist(self):
        """Write the checkpoint now (blocking; the log normally queues this on its writer)."""
        if self.checkpoint is not None:
            self.checkpoint.write(self.entries)
