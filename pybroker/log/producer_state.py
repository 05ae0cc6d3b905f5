"""Producer state for idempotence (Kafka's ProducerStateManager / ProducerAppendInfo /
ProducerStateEntry), and its `<offset>.snapshot` files.

Per producer id: the epoch and the last five batches' (first seq, last seq, last offset, timestamp).
An incoming client batch is first looked up as a duplicate (same epoch, exact sequence range among
the five: the original offsets are returned and nothing is appended), then checked:
  * epoch lower than the current one            -> InvalidProducerEpochError (47)
  * new epoch, first sequence != 0, producer known -> OutOfOrderSequenceError (45)
  * same epoch, first sequence != last + 1 (2^31-1 wraps to 0) -> OutOfOrderSequenceError
  * unknown producer (no state: new, expired, or removed by retention): any sequence is accepted
    (since KIP-360, Kafka 2.5, the broker no longer answers UNKNOWN_PRODUCER_ID on produce).
Replication and recovery append with origin REPLICATION: no checks, state is just updated.

Transactions: each entry carries `current_txn_first_offset` and `coordinator_epoch` (both already
in the snapshot format); `ongoing_txns` / `first_unstable_offset` are where the LSO will come from.

Snapshot layout (version 1, big-endian):
  i16 version | u32 crc32c(everything after this field) | i32 count |
  count x [ i64 producer_id | i16 epoch | i32 last_sequence | i64 last_offset | i32 offset_delta |
            i64 timestamp | i32 coordinator_epoch | i64 current_txn_first_offset (-1 = none) ]
"""
import collections
import os
import struct

from pybroker import _impl
from pybroker.log.errors import (
    CorruptSnapshotError, InvalidProducerEpochError, InvalidTxnStateError, OutOfOrderSequenceError)

_crc = _impl.load("crc32c")

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
NUM_BATCHES_TO_RETAIN = 5
SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
_INT32_MAX = 0x7FFFFFFF

_SNAP_HEAD = struct.Struct(">hI")
_SNAP_COUNT = struct.Struct(">i")
_SNAP_ENTRY = struct.Struct(">qhiqiqiq")


class AppendOrigin:
    CLIENT = "client"
    REPLICATION = "replication"
    COORDINATOR = "coordinator"


def decrement_sequence(seq, by):
    return seq - by if seq >= by else _INT32_MAX - (by - seq) + 1


def increment_sequence(seq, by):
    return seq + by if seq <= _INT32_MAX - by else by - (_INT32_MAX - seq) - 1


class BatchMetadata:
    __slots__ = ("last_seq", "last_offset", "offset_delta", "timestamp")

    def __init__(self, last_seq, last_offset, offset_delta, timestamp):
        self.last_seq = last_seq
        self.last_offset = last_offset
        self.offset_delta = offset_delta
        self.timestamp = timestamp

    @property
    def first_seq(self):
        return decrement_sequence(self.last_seq, self.offset_delta)

    @property
    def first_offset(self):
        return self.last_offset - self.offset_delta

    def __eq__(self, other):
        return isinstance(other, BatchMetadata) and all(
            getattr(self, a) == getattr(other, a) for a in self.__slots__)

    def __repr__(self):
        return (f"BatchMetadata(first_seq={self.first_seq}, last_seq={self.last_seq}, "
                f"first_offset={self.first_offset}, last_offset={self.last_offset}, ts={self.timestamp})")


class ProducerStateEntry:
    def __init__(self, producer_id, producer_epoch=NO_PRODUCER_EPOCH, coordinator_epoch=-1,
                 last_timestamp=-1, current_txn_first_offset=None, batches=()):
        self.producer_id = producer_id
        self.producer_epoch = producer_epoch
        self.coordinator_epoch = coordinator_epoch
        self.last_timestamp = last_timestamp
        self.current_txn_first_offset = current_txn_first_offset
        self.batch_metadata = collections.deque(batches, maxlen=NUM_BATCHES_TO_RETAIN)

    def copy(self):
        return ProducerStateEntry(self.producer_id, self.producer_epoch, self.coordinator_epoch,
                                  self.last_timestamp, self.current_txn_first_offset, self.batch_metadata)

    def is_empty(self):
        return not self.batch_metadata

    @property
    def first_seq(self):
        return self.batch_metadata[0].first_seq if self.batch_metadata else NO_SEQUENCE

    @property
    def last_seq(self):
        return self.batch_metadata[-1].last_seq if self.batch_metadata else NO_SEQUENCE

    @property
    def last_data_offset(self):
        return self.batch_metadata[-1].last_offset if self.batch_metadata else -1

    @property
    def last_offset_delta(self):
        return self.batch_metadata[-1].offset_delta if self.batch_metadata else 0

    def maybe_update_producer_epoch(self, epoch):
        if self.producer_epoch != epoch:
            self.batch_metadata.clear()
            self.producer_epoch = epoch
            return True
        return False

    def add_batch(self, epoch, last_seq, last_offset, offset_delta, timestamp):
        self.maybe_update_producer_epoch(epoch)
        self.batch_metadata.append(BatchMetadata(last_seq, last_offset, offset_delta, timestamp))
        self.last_timestamp = timestamp

    def find_duplicate_batch(self, producer_epoch, first_seq, last_seq):
        if producer_epoch != self.producer_epoch:
            return None
        for meta in self.batch_metadata:
            if meta.first_seq == first_seq and meta.last_seq == last_seq:
                return meta
        return None

    def __repr__(self):
        return (f"ProducerStateEntry(producer_id={self.producer_id}, epoch={self.producer_epoch}, "
                f"batches={list(self.batch_metadata)})")


class ProducerAppendInfo:
    """Validates one producer's batches of an append against its state, building the new state."""

    def __init__(self, partition, producer_id, current_entry, origin):
        self.partition = partition
        self.producer_id = producer_id
        self.current_entry = current_entry
        self.origin = origin
        self.updated_entry = ProducerStateEntry(
            producer_id, current_entry.producer_epoch, current_entry.coordinator_epoch,
            current_entry.last_timestamp, current_entry.current_txn_first_offset)
        self.started_transactions = []
        self.completed_transactions = []

    def _check_producer_epoch(self, epoch, offset):
        current = self.updated_entry.producer_epoch
        if epoch < current and self.origin != AppendOrigin.REPLICATION:
            raise InvalidProducerEpochError(
                f"Epoch of producer {self.producer_id} at offset {offset} in {self.partition} is "
                f"{epoch}, which is smaller than the last seen epoch {current}")

    def _check_sequence(self, epoch, first_seq, offset):
        updated, current = self.updated_entry, self.current_entry
        if epoch != updated.producer_epoch:
            if first_seq != 0 and updated.producer_epoch != NO_PRODUCER_EPOCH:
                raise OutOfOrderSequenceError(
                    f"Invalid sequence number for new epoch of producer {self.producer_id} at offset "
                    f"{offset} in partition {self.partition}: {epoch} (request epoch), {first_seq} "
                    f"(seq. number), {updated.producer_epoch} (current producer epoch)")
            return
        if not updated.is_empty():
            last_seq = updated.last_seq
        elif epoch == current.producer_epoch:
            last_seq = current.last_seq
        else:
            last_seq = NO_SEQUENCE
        in_sequence = first_seq == last_seq + 1 or (first_seq == 0 and last_seq == _INT32_MAX)
        if not (current.producer_epoch == NO_PRODUCER_EPOCH or in_sequence):
            raise OutOfOrderSequenceError(
                f"Out of order sequence number for producer {self.producer_id} at offset {offset} in "
                f"partition {self.partition}: {first_seq} (incoming seq. number), {last_seq} "
                f"(current end sequence number)")

    def append_data_batch(self, epoch, first_seq, last_seq, last_timestamp, first_offset,
                          last_offset, is_transactional):
        self._check_producer_epoch(epoch, first_offset)
        if self.origin == AppendOrigin.CLIENT:
            self._check_sequence(epoch, first_seq, first_offset)
        entry = self.updated_entry
        entry.add_batch(epoch, last_seq, last_offset, last_offset - first_offset, last_timestamp)
        if entry.current_txn_first_offset is not None and not is_transactional:
            raise InvalidTxnStateError(
                f"Expected transactional write from producer {self.producer_id} at offset "
                f"{first_offset} in partition {self.partition}")
        if entry.current_txn_first_offset is None and is_transactional:
            entry.current_txn_first_offset = first_offset
            self.started_transactions.append(first_offset)

    def append_control_batch(self, epoch, offset):
        """A transaction marker (COMMIT/ABORT) ends the producer's open transaction. Coordinator
        epoch checks and the aborted-transaction index belong to the transactions work."""
        self._check_producer_epoch(epoch, offset)
        self.updated_entry.maybe_update_producer_epoch(epoch)
        if self.updated_entry.current_txn_first_offset is not None:
            self.completed_transactions.append(self.updated_entry.current_txn_first_offset)
        self.updated_entry.current_txn_first_offset = None

    def append_batch(self, batch):
        """Append a batch view (RecordBatch) whose offsets are final (replay, replication)."""
        if batch.is_control:
            self.append_control_batch(batch.producer_epoch, batch.base_offset)
            return
        last_seq = increment_sequence(batch.base_sequence, batch.last_offset_delta) \
            if batch.base_sequence >= 0 else NO_SEQUENCE
        self.append_data_batch(batch.producer_epoch, batch.base_sequence, last_seq,
                               batch.max_timestamp, batch.base_offset, batch.last_offset,
                               batch.is_transactional)


class ProducerStateManager:
    def __init__(self, partition, dir_path=None, producer_id_expiration_ms=86400000):
        self.partition = partition
        self.dir_path = dir_path
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producers = {}
        self.ongoing_txns = {}           # first offset -> producer id (LSO hook for transactions)
        self.last_map_offset = 0
        self.last_snap_offset = 0
        self.snapshots = self._list_snapshots()

    # ---- lookups --------------------------------------------------------------------------

    def last_entry(self, producer_id):
        return self.producers.get(producer_id)

    def find_duplicate(self, batch):
        entry = self.producers.get(batch.producer_id)
        if entry is None or batch.base_sequence < 0:
            return None
        last_seq = increment_sequence(batch.base_sequence, batch.last_offset_delta)
        return entry.find_duplicate_batch(batch.producer_epoch, batch.base_sequence, last_seq)

    def first_unstable_offset(self):
        return min(self.ongoing_txns) if self.ongoing_txns else None

    # ---- updates --------------------------------------------------------------------------

    def prepare_update(self, producer_id, origin):
        current = self.producers.get(producer_id) or ProducerStateEntry(producer_id)
        return ProducerAppendInfo(self.partition, producer_id, current, origin)

    def update(self, info):
        entry = info.updated_entry
        current = self.producers.get(info.producer_id)
        if current is None:
            self.producers[info.producer_id] = entry
        else:
            current.maybe_update_producer_epoch(entry.producer_epoch)
            current.batch_metadata.extend(entry.batch_metadata)
            current.coordinator_epoch = entry.coordinator_epoch
            current.current_txn_first_offset = entry.current_txn_first_offset
            current.last_timestamp = entry.last_timestamp
        for first_offset in info.started_transactions:
            self.ongoing_txns[first_offset] = info.producer_id
        for first_offset in info.completed_transactions:
            self.ongoing_txns.pop(first_offset, None)

    def update_map_end_offset(self, offset):
        self.last_map_offset = offset

    def apply_batch(self, batch, origin=AppendOrigin.REPLICATION):
        """Recovery/replay path: update the state from one batch without client checks."""
        if batch.producer_id < 0:
            return
        info = self.prepare_update(batch.producer_id, origin)
        info.append_batch(batch)
        self.update(info)

    def remove_expired_producers(self, now_ms):
        expired = [pid for pid, e in self.producers.items()
                   if e.current_txn_first_offset is None
                   and now_ms - e.last_timestamp >= self.producer_id_expiration_ms]
        for pid in expired:
            del self.producers[pid]
        return expired

    def truncate_fully_and_start_at(self, offset):
        self.producers.clear()
        self.ongoing_txns.clear()
        for snap in [o for o in self.snapshots]:
            self._delete_snapshot(snap)
        self.last_map_offset = self.last_snap_offset = offset

    # ---- snapshots ------------------------------------------------------------------------

    def snapshot_bytes(self):
        return encode_snapshot(self.producers.values())

    def snapshot_path(self, offset):
        return os.path.join(self.dir_path, f"{offset:020d}{SNAPSHOT_SUFFIX}")

    def take_snapshot(self, write=None):
        """Snapshot the state at last_map_offset. `write(path, data)` does the I/O (the log
        queues it on its writer); by default it is written here, crash-safely."""
        if self.dir_path is None or self.last_map_offset == self.last_snap_offset:
            return None
        from pybroker.log.checkpoint import write_atomic
        offset, data = self.last_map_offset, self.snapshot_bytes()
        path = self.snapshot_path(offset)
        (write or write_atomic)(path, data)
        self.snapshots[offset] = path
        self.last_snap_offset = offset
        return path

    def _list_snapshots(self):
        if self.dir_path is None or not os.path.isdir(self.dir_path):
            return {}
        out = {}
        for name in os.listdir(self.dir_path):
            if name.endswith(SNAPSHOT_SUFFIX) and name[:-len(SNAPSHOT_SUFFIX)].isdigit():
                out[int(name[:-len(SNAPSHOT_SUFFIX)])] = os.path.join(self.dir_path, name)
        return out

    def _delete_snapshot(self, offset):
        path = self.snapshots.pop(offset, None)
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def delete_snapshots_after(self, offset):
        for snap in [o for o in self.snapshots if o > offset]:
            self._delete_snapshot(snap)

    def delete_snapshots_before(self, offset):
        for snap in [o for o in self.snapshots if o < offset]:
            self._delete_snapshot(snap)

    def latest_snapshot_offset(self):
        return max(self.snapshots) if self.snapshots else None

    def load_from_snapshot(self, log_start_offset, log_end_offset, now_ms):
        """Reset to the newest readable snapshot <= log_end_offset (corrupt ones are deleted).
        Returns the offset replay must start from."""
        self.producers.clear()
        self.ongoing_txns.clear()
        self.delete_snapshots_after(log_end_offset)
        while self.snapshots:
            offset = max(self.snapshots)
            try:
                entries = read_snapshot(self.snapshots[offset])
            except CorruptSnapshotError:
                self._delete_snapshot(offset)
                continue
            for entry in entries:
                if entry.current_txn_first_offset is not None or \
                        now_ms - entry.last_timestamp < self.producer_id_expiration_ms:
                    self.producers[entry.producer_id] = entry
                    if entry.current_txn_first_offset is not None:
                        self.ongoing_txns[entry.current_txn_first_offset] = entry.producer_id
            self.last_map_offset = self.last_snap_offset = offset
            return max(offset, log_start_offset)
        self.last_map_offset = self.last_snap_offset = log_start_offset
        return log_start_offset


def encode_snapshot(entries):
    body = bytearray(_SNAP_COUNT.pack(len(entries) if hasattr(entries, "__len__") else 0))
    count = 0
    for e in sorted(entries, key=lambda e: e.producer_id):
        txn = -1 if e.current_txn_first_offset is None else e.current_txn_first_offset
        body += _SNAP_ENTRY.pack(e.producer_id, e.producer_epoch, e.last_seq, e.last_data_offset,
                                 e.last_offset_delta, e.last_timestamp, e.coordinator_epoch, txn)
        count += 1
    _SNAP_COUNT.pack_into(body, 0, count)
    return _SNAP_HEAD.pack(SNAPSHOT_VERSION, _crc.crc32c(bytes(body))) + bytes(body)


def decode_snapshot(data, where="<snapshot>"):
    if len(data) < _SNAP_HEAD.size + _SNAP_COUNT.size:
        raise CorruptSnapshotError(f"{where}: {len(data)} bytes is too short for a snapshot")
    version, crc = _SNAP_HEAD.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise CorruptSnapshotError(f"{where}: snapshot version {version}, expected {SNAPSHOT_VERSION}")
    if _crc.crc32c(bytes(data[6:])) != crc:
        raise CorruptSnapshotError(f"{where}: snapshot CRC mismatch")
    (count,) = _SNAP_COUNT.unpack_from(data, 6)
    if count < 0 or 10 + count * _SNAP_ENTRY.size != len(data):
        raise CorruptSnapshotError(f"{where}: {count} entries do not match {len(data)} bytes")
    out = []
    for i in range(count):
        pid, epoch, last_seq, last_offset, delta, ts, coord, txn = \
            _SNAP_ENTRY.unpack_from(data, 10 + i * _SNAP_ENTRY.size)
        batches = [BatchMetadata(last_seq, last_offset, delta, ts)] if last_offset >= 0 else []
        out.append(ProducerStateEntry(pid, epoch, coord, ts, None if txn < 0 else txn, batches))
    return out


def read_snapshot(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError as exc:
        raise CorruptSnapshotError(f"{path}: missing") from exc
    return decode_snapshot(data, path)
