"""Log compaction's per-record work: pure-Python twin of pybroker_core.cleaner (same names, same
results, same errors). The layouts and the retention rules are documented there; this file is
the readable specification of them.

    OffsetMap(memory, load_factor)      key hash -> latest offset, at most memory // 24 slots
    hash_key(key) -> (h1, h2)           MurmurHash3 x64-128, seed 0
    TxnMetadata(aborted)                aborted / committed transaction bookkeeping
    build_offset_map(map, data, pos, start_offset, txn, base_position=0) -> (pos, full)
    SegmentCleaner(map, now, delete_retention_ms, active_producers, txn, upper_bound)
        .start_segment(base, index_interval) .clean(data, pos, base_position) -> (bytes, pos)
        .finish_segment() -> (offset index bytes, time index bytes)
"""
import struct

from pybroker import _impl
from pybroker.codec import compression as _compression
from pybroker.codec._pure.record_cursor import REASONS, CursorError, read_record, records
from pybroker.codec.errors import CorruptRecordError, InvalidRecordError

_crc = _impl.load("crc32c")

__all__ = ["OffsetMap", "TxnMetadata", "SegmentCleaner", "build_offset_map", "hash_key",
           "SLOT_SIZE"]

SLOT_SIZE = 24
HEADER = 61
OVERHEAD = 12
MIN_BATCH_LENGTH = 49
CRC_START = 21
TS_TYPE_MASK = 0x08
TXN_MASK = 0x10
CONTROL_MASK = 0x20
HORIZON_MASK = 0x40
DELETE, DELETE_EMPTY, RETAIN_EMPTY = 0, 1, 2
_M64 = (1 << 64) - 1
_HEAD = struct.Struct(">qiiBIhiqqqhii")

_REASONS = {**REASONS, "header": "invalid batch header", "crc": "CRC mismatch"}


class _Fail(CursorError):
    """A batch-level failure ("header", "crc"); the record walk raises CursorError."""


def _to_error(exc, base):
    cls = CorruptRecordError if exc.kind in ("header", "crc") else InvalidRecordError
    return cls(_REASONS[exc.kind], base + exc.pos)


# ---- hash ---------------------------------------------------------------------------------------

def _rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & _M64


def _fmix(k):
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & _M64
    k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & _M64
    return k ^ (k >> 33)


def hash_key(key):
    """MurmurHash3 x64 128-bit of `key`, seed 0: (h1, h2)."""
    data = bytes(key)
    n = len(data)
    c1, c2 = 0x87c37b91114253d5, 0x4cf5ad432745937f
    h1 = h2 = 0
    nblocks = n // 16
    for i in range(nblocks):
        k1 = int.from_bytes(data[16 * i:16 * i + 8], "little")
        k2 = int.from_bytes(data[16 * i + 8:16 * i + 16], "little")
        k1 = (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
        h1 ^= k1
        h1 = (((_rotl(h1, 27) + h2) & _M64) * 5 + 0x52dce729) & _M64
        k2 = (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
        h2 ^= k2
        h2 = (((_rotl(h2, 31) + h1) & _M64) * 5 + 0x38495ab5) & _M64
    tail = data[nblocks * 16:]
    if len(tail) > 8:
        k2 = int.from_bytes(tail[8:], "little")
        h2 ^= (_rotl((k2 * c2) & _M64, 33) * c1) & _M64
    if tail:
        k1 = int.from_bytes(tail[:8], "little")
        h1 ^= (_rotl((k1 * c1) & _M64, 31) * c2) & _M64
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    h1, h2 = _fmix(h1), _fmix(h2)
    h1 = (h1 + h2) & _M64
    h2 = (h2 + h1) & _M64
    return h1, h2


# ---- the offset map -----------------------------------------------------------------------------

class OffsetMap:
    """Key hash -> latest offset with the compiled map's capacity rules (a dict of hashes)."""

    def __init__(self, memory, load_factor=0.9):
        if not 0 < load_factor <= 1:
            raise ValueError(f"load factor {load_factor} is not in (0, 1]")
        self.slots = memory // SLOT_SIZE
        self.max_entries = min(int(self.slots * load_factor), self.slots - 1)  # one slot stays empty
        if self.max_entries < 1:
            raise ValueError(f"{memory} bytes of offset map hold no key: increase "
                             f"log.cleaner.dedupe.buffer.size or decrease log.cleaner.threads")
        self.load_factor = load_factor
        self._table = {}
        self.latest_offset = -1

    @property
    def memory(self):
        return self.slots * SLOT_SIZE

    @property
    def size(self):
        return len(self._table)

    @property
    def utilization(self):
        return self.size / self.slots

    def full(self):
        return self.size >= self.max_entries

    def put_hash(self, h, offset):
        if h not in self._table and self.size >= self.max_entries:
            return False
        self._table[h] = offset
        if offset > self.latest_offset:
            self.latest_offset = offset
        return True

    def put(self, key, offset):
        if not self.put_hash(hash_key(key), offset):
            raise OverflowError(f"offset map is full ({self.size} of {self.max_entries} keys)")

    def get(self, key):
        return self._table.get(hash_key(key), -1)

    def update_latest_offset(self, offset):
        if offset > self.latest_offset:
            self.latest_offset = offset

    def clear(self):
        self._table.clear()
        self.latest_offset = -1

    def __len__(self):
        return self.size


# ---- records ------------------------------------------------------------------------------------

def _zigzag_bytes(v, bits):
    u = ((v << 1) ^ (v >> (bits - 1))) & ((1 << bits) - 1)
    out = bytearray()
    while u >= 0x80:
        out.append((u & 0x7F) | 0x80)
        u >>= 7
    out.append(u)
    return bytes(out)


# ---- batches ------------------------------------------------------------------------------------

class _Batch:
    __slots__ = ("pos", "size", "base_offset", "leader_epoch", "crc", "attributes",
                 "last_offset_delta", "base_timestamp", "max_timestamp", "producer_id",
                 "producer_epoch", "base_sequence", "count")

    @property
    def last_offset(self):
        return self.base_offset + self.last_offset_delta

    @property
    def special(self):
        return (self.attributes & 0x07) != 0 or (self.attributes & (TXN_MASK | CONTROL_MASK)) != 0


def _read_batch(buf, pos, end):
    """The batch at pos, or None when it does not fit before `end`."""
    if end - pos < OVERHEAD:
        return None
    length = int.from_bytes(buf[pos + 8:pos + 12], "big", signed=True)
    if length < MIN_BATCH_LENGTH:
        raise _Fail("header", pos)
    if OVERHEAD + length > end - pos:
        return None
    if buf[pos + 16] != 2:
        raise _Fail("header", pos)
    b = _Batch()
    (b.base_offset, _, b.leader_epoch, _, b.crc, b.attributes, b.last_offset_delta,
     b.base_timestamp, b.max_timestamp, b.producer_id, b.producer_epoch, b.base_sequence,
     b.count) = _HEAD.unpack_from(buf, pos)
    b.pos = pos
    b.size = OVERHEAD + length
    if b.count < 0 or b.last_offset_delta < 0:
        raise _Fail("header", pos)
    if _crc.crc32c(bytes(buf[pos + CRC_START:pos + b.size])) != b.crc:
        raise _Fail("crc", pos)
    return b


def _control_type(buf, b):
    if b.count == 0:
        return -1
    try:
        r, _ = read_record(buf, b.pos + HEADER, b.pos + b.size)
    except CursorError:
        return -2
    if r.key_len < 4:
        return -2
    return int.from_bytes(buf[r.key_pos + 2:r.key_pos + 4], "big", signed=True)


def _decompress(buf, b, base_position, max_size):
    section = memoryview(buf)[b.pos + HEADER:b.pos + b.size]
    return _compression.decompress(b.attributes & 0x07, section, max_size,
                                   base_position + b.pos + HEADER)


# ---- transactions -------------------------------------------------------------------------------

class TxnMetadata:
    """Aborted transactions (producer_id, first_offset, last_offset) and the ones seen so far."""

    def __init__(self, aborted=()):
        self.aborted = sorted(aborted, key=lambda t: t[1])
        self.next_aborted = 0
        self.ongoing_aborted = {}
        self.ongoing_committed = set()

    def add_aborted(self, aborted):
        rest = self.aborted[self.next_aborted:] + list(aborted)
        self.aborted = sorted(rest, key=lambda t: t[1])
        self.next_aborted = 0

    def _consume_up_to(self, offset):
        while self.next_aborted < len(self.aborted) and self.aborted[self.next_aborted][1] <= offset:
            self.ongoing_aborted[self.aborted[self.next_aborted][0]] = -1
            self.next_aborted += 1

    def on_batch(self, producer_id, transactional, last_offset):
        self._consume_up_to(last_offset)
        if not transactional:
            return False
        if producer_id in self.ongoing_aborted:
            self.ongoing_aborted[producer_id] = last_offset
            return True
        self.ongoing_committed.add(producer_id)
        return False

    def on_control(self, producer_id, control_type, last_offset):
        self._consume_up_to(last_offset)
        if control_type == -1:
            return True
        if control_type == 0:
            observed = self.ongoing_aborted.pop(producer_id, None)
            return not (observed is not None and observed >= 0)
        if control_type == 1:
            if producer_id in self.ongoing_committed:
                self.ongoing_committed.discard(producer_id)
                return False
            return True
        return False


# ---- offset map build ---------------------------------------------------------------------------

def build_offset_map(m, data, pos, start_offset, txn, base_position=0, max_decompressed_size=None):
    buf = memoryview(data).cast("B")
    end = len(buf)
    try:
        while pos < end:
            b = _read_batch(buf, pos, end)
            if b is None:
                break
            if _map_batch(m, buf, b, start_offset, txn, base_position, max_decompressed_size):
                return pos, True
            pos += b.size
    except CursorError as exc:
        raise _to_error(exc, base_position) from None
    return pos, False


def _map_batch(m, buf, b, start_offset, txn, base_position, max_size):
    """Returns True when the map filled up inside this batch."""
    codec = b.attributes & 0x07
    if b.attributes & CONTROL_MASK:
        if codec == 0:
            txn.on_control(b.producer_id, _control_type(buf, b), b.last_offset)
    elif not txn.on_batch(b.producer_id, bool(b.attributes & TXN_MASK), b.last_offset):
        if b.last_offset >= start_offset:
            if _map_records(m, buf, b, start_offset, base_position, max_size):
                return True
    if b.last_offset >= start_offset:
        m.update_latest_offset(b.last_offset)
    return False


def _map_records(m, buf, b, start_offset, base_position, max_size):
    codec = b.attributes & 0x07
    if codec:
        blob = memoryview(_decompress(buf, b, base_position, max_size)).cast("B")
        start, end = 0, len(blob)
    else:
        blob, start, end = buf, b.pos + HEADER, b.pos + b.size
    try:
        for r in records(blob, start, end, b.count):
            offset = b.base_offset + r.offset_delta
            if r.key_len >= 0 and offset >= start_offset:
                if m.full() or not m.put_hash(hash_key(r.key(blob)), offset):
                    return True
    except CursorError as exc:
        if codec:
            raise InvalidRecordError(f"{_REASONS[exc.kind]} (decompressed batch)",
                                     base_position + b.pos) from None
        raise
    return False


# ---- cleaning -----------------------------------------------------------------------------------

class SegmentCleaner:
    """See pybroker_core.cleaner.SegmentCleaner."""

    def __init__(self, m, now, delete_retention_ms, active_producers, txn, upper_bound,
                 max_decompressed_size=None):
        self.map = m
        self.txn = txn
        self.now = now
        self.delete_retention_ms = delete_retention_ms
        self.upper_bound = upper_bound
        self.producers = dict(active_producers)
        self.max_decompressed = max_decompressed_size
        self.latest_delete_horizon = -1
        self.messages_read = self.bytes_read = 0
        self.messages_retained = self.bytes_retained = 0
        self.invalid_messages = self.batches_rewritten = 0
        self.start_segment(0, 4096)

    # ---- destination segment ----------------------------------------------------------------

    def start_segment(self, base_offset, index_interval_bytes):
        self.dest_base = base_offset
        self.size = 0
        self.index_interval = index_interval_bytes
        self.since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_ts = -1
        self.last_time_entry_ts = -1
        self.oidx = bytearray()
        self.tidx = bytearray()

    def finish_segment(self):
        if self.max_timestamp >= 0:
            self._time_entry(self.max_timestamp, self.offset_of_max_ts)
        return bytes(self.oidx), bytes(self.tidx)

    def _time_entry(self, ts, offset):
        # time index entry: i64 timestamp | u32 relative offset
        if ts > self.last_time_entry_ts:
            self.tidx += struct.pack(">qI", ts, offset - self.dest_base)
            self.last_time_entry_ts = ts

    def _index_batch(self, last_offset, max_ts, size):
        # offset index entry: u32 relative offset | u32 position
        if max_ts > self.max_timestamp:
            self.max_timestamp, self.offset_of_max_ts = max_ts, last_offset
        if self.since_index > self.index_interval:
            self.oidx += struct.pack(">II", last_offset - self.dest_base, self.size)
            self._time_entry(self.max_timestamp, self.offset_of_max_ts)
            self.since_index = 0
        self.since_index += size
        self.size += size

    # ---- the filter ---------------------------------------------------------------------------

    def clean(self, data, pos=0, base_position=0):
        buf = memoryview(data).cast("B")
        end = len(buf)
        out = bytearray()
        try:
            while pos < end:
                b = _read_batch(buf, pos, end)
                if b is None:
                    break
                self._clean_batch(buf, b, out, base_position)
                pos += b.size
        except CursorError as exc:
            raise _to_error(exc, base_position) from None
        return bytes(out), pos

    def _clean_batch(self, buf, b, out, base_position):
        control = bool(b.attributes & CONTROL_MASK)
        codec = b.attributes & 0x07
        can_discard = False
        if control:
            can_discard = self.txn.on_control(b.producer_id, _control_type(buf, b) if codec == 0
                                              else -2, b.last_offset)
        elif b.special:
            can_discard = self.txn.on_batch(b.producer_id, bool(b.attributes & TXN_MASK),
                                            b.last_offset)
        retention, discard_records = self._retention(b, can_discard)
        self.messages_read += b.count
        self.bytes_read += b.size
        if retention == DELETE:
            return
        if codec:
            blob = memoryview(_decompress(buf, b, base_position, self.max_decompressed)).cast("B")
            try:
                kept = self._collect(b, blob, 0, len(blob), control, discard_records)
            except CursorError as exc:
                raise InvalidRecordError(f"{_REASONS[exc.kind]} (decompressed batch)",
                                         base_position + b.pos) from None
        else:
            kept = self._collect(b, buf, b.pos + HEADER, b.pos + b.size, control, discard_records)
        self._emit(buf, b, out, retention, kept, can_discard and control, codec)

    def _retention(self, b, can_discard):
        control = bool(b.attributes & CONTROL_MASK)
        if control:
            discard = can_discard and bool(b.attributes & HORIZON_MASK) and b.base_timestamp <= self.now
        else:
            discard = can_discard
        if b.producer_id >= 0 and b.producer_id in self.producers:
            last_data, epoch = self.producers[b.producer_id]
            if (last_data >= 0 and b.last_offset == last_data) or \
                    (last_data < 0 and control and b.producer_epoch == epoch):
                return RETAIN_EMPTY, discard
        if b.last_offset + 1 == self.upper_bound:
            return RETAIN_EMPTY, discard
        return (DELETE if discard else DELETE_EMPTY), discard

    def _keep(self, b, buf, r):
        offset = b.base_offset + r.offset_delta
        if offset > self.map.latest_offset:
            return True
        if r.key_len < 0:
            self.invalid_messages += 1
            return False
        if offset < self.map._table.get(hash_key(r.key(buf)), -1):
            return False
        if r.value_len >= 0:
            return True
        return not (b.attributes & HORIZON_MASK) or self.now < b.base_timestamp

    def _collect(self, b, buf, start, end, control, discard_records):
        """[(record, its bytes)] kept, plus tombstone flag, dropped count and max timestamp."""
        kept, dropped, tombstones, max_ts = [], 0, False, -1
        for r in records(buf, start, end, b.count):
            if discard_records or not (control or self._keep(b, buf, r)):
                dropped += 1
                continue
            kept.append((r, bytes(buf[r.start:r.end])))
            tombstones |= r.value_len < 0
            max_ts = max(max_ts, b.base_timestamp + r.ts_delta)
        return kept, dropped, tombstones, max_ts

    def _emit(self, buf, b, out, retention, collected, marker_for_empty_txn, codec):
        kept, dropped, tombstones, max_ts = collected
        if not kept:
            if retention == RETAIN_EMPTY:
                self._emit_empty(b, out)
            return
        has_horizon = bool(b.attributes & HORIZON_MASK)
        need_horizon = (tombstones or marker_for_empty_txn) and not has_horizon
        if dropped == 0 and not need_horizon:
            out += buf[b.pos:b.pos + b.size]
            self.messages_retained += len(kept)
            self.bytes_retained += b.size
            self._index_batch(b.last_offset, b.max_timestamp, b.size)
            return
        base_ts = b.base_timestamp
        if need_horizon:
            base_ts = self.now + self.delete_retention_ms
            body = b"".join(_rebased(r, raw, b.base_timestamp, base_ts) for r, raw in kept)
        else:
            body = b"".join(raw for _, raw in kept)
        if codec:
            body = _compression.compress(codec, body)
        attributes = b.attributes | (HORIZON_MASK if need_horizon else 0)
        max_ts = b.max_timestamp if b.attributes & TS_TYPE_MASK else max_ts
        raw = _header(b, HEADER + len(body), attributes, base_ts, max_ts, len(kept), body)
        out += raw
        self.messages_retained += len(kept)
        self.bytes_retained += len(raw)
        self.batches_rewritten += 1
        if (need_horizon or has_horizon) and base_ts > self.latest_delete_horizon:
            self.latest_delete_horizon = base_ts
        self._index_batch(b.last_offset, max_ts, len(raw))

    def _emit_empty(self, b, out):
        attributes = b.attributes & (TS_TYPE_MASK | TXN_MASK | CONTROL_MASK)
        raw = _header(b, HEADER, attributes, b.max_timestamp, b.max_timestamp, 0, b"")
        out += raw
        self.bytes_retained += HEADER
        self.batches_rewritten += 1
        self._index_batch(b.last_offset, b.max_timestamp, HEADER)


def _rebased(r, raw, old_base, new_base):
    """The record's bytes with its timestamp delta relative to new_base."""
    off = r.start
    body = (raw[r.ts_start - 1 - off:r.ts_start - off]
            + _zigzag_bytes(old_base + r.ts_delta - new_base, 64) + raw[r.ts_end - off:])
    return _zigzag_bytes(len(body), 32) + body


def _header(b, total, attributes, base_ts, max_ts, count, body):
    head = bytearray(HEADER)
    _HEAD.pack_into(head, 0, b.base_offset, total - OVERHEAD, b.leader_epoch, 2, 0, attributes,
                    b.last_offset_delta, base_ts, max_ts, b.producer_id, b.producer_epoch,
                    b.base_sequence, count)
    crc = _crc.crc32c(bytes(head[CRC_START:]) + bytes(body))
    struct.pack_into(">I", head, 17, crc)
    return bytes(head) + bytes(body)
