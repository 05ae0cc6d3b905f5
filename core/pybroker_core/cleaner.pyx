# cython: freethreading_compatible = False
"""Log compaction's per-record work (compiled twin of pybroker/codec/_pure/cleaner.py): Kafka's
SkimpyOffsetMap, the offset-map build over the dirty section, and the record filter that copies
a segment's retained batches into a cleaned segment with its index entries.

The orchestration (which log, which segments, files, swap, checkpoints) is pybroker/log/cleaner.py;
these functions run in a cleaner worker thread and release the GIL for their record loops. The GIL
is taken only per batch that needs Python: compressed batches (the codec libraries) and
transactional/control batches (the transaction bookkeeping, rare).

OffsetMap: open addressing over a fixed array of slots, linear probing.
    slot: u64 h1 | u64 h2 | i64 offset + 1 (0 = empty)                           24 bytes
  (h1, h2) is MurmurHash3 x64-128 (seed 0) of the key bytes: a collision would merge two keys, so
  the hash is 128 bits wide, like Kafka's MD5. `max_entries` = slots x load factor; the map is
  "full" when that many keys are in it (Kafka's maxDesiredMapSize).

Input: a buffer of whole magic-2 batches as stored in a segment (layout in records.pyx):
    0 base_offset i64 | 8 batch_length i32 | 12 partition_leader_epoch i32 | 16 magic i8
    17 crc u32 | 21 attributes i16 | 23 last_offset_delta i32 | 27 base_timestamp i64
    35 max_timestamp i64 | 43 producer_id i64 | 51 producer_epoch i16 | 53 base_sequence i32
    57 records_count i32 | 61 records
  attributes bit 6 (0x40): base_timestamp holds the batch's delete horizon (KIP-534).
Record: length varint | attributes i8 | timestamp_delta varlong | offset_delta varint
        | key_length varint | key | value_length varint | value | headers_count varint | headers

Retention rules (Kafka's Cleaner/MemoryRecords.filterTo): a record is kept when its offset is past
the map's latest offset, or it is the latest for its key (offset >= map[key]) and it has a value or
its batch has no delete horizon yet / the horizon is in the future; keyless records are dropped.
A batch keeping tombstones (or a marker of an emptied transaction) without a horizon is rewritten
with horizon = now + delete.retention.ms. Whole batches: discarded when empty, except the last batch
of an active producer and the batch ending the cleaning round, which keep their header (no
records) so producer state and the last offset survive. Kept batches keep their base offset and
last offset delta (the record count may then be below last_offset_delta + 1), codec, producer
fields and leader epoch; their CRC is recomputed. Every source batch's CRC is checked first: a
corrupt batch is an error, never laundered into a valid-looking cleaned one.
"""
cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy, memset

from pybroker_core.crc32c cimport crc32c_update
from pybroker_core.record_cursor cimport (
    CUR_FIELD, CUR_LENGTH, CUR_NEG, CUR_OK, CUR_TRAILING, CUR_VARINT, Cur, RecordFields,
    cur_record_fields, cur_varint)

from pybroker.codec import compression as _compression
from pybroker.codec.errors import CorruptRecordError, InvalidRecordError

__all__ = ["OffsetMap", "TxnMetadata", "SegmentCleaner", "build_offset_map", "hash_key",
           "SLOT_SIZE"]

SLOT_SIZE = 24

cdef enum:
    HEADER = 61
    OVERHEAD = 12
    MIN_BATCH_LENGTH = 49
    CRC_START = 21
    TS_TYPE_MASK = 0x08
    TXN_MASK = 0x10
    CONTROL_MASK = 0x20
    HORIZON_MASK = 0x40

# nogil error codes (turned into exceptions once the GIL is held)
cdef enum:
    OK = CUR_OK
    E_VARINT = CUR_VARINT
    E_RECORD_LENGTH = CUR_LENGTH
    E_FIELD = CUR_FIELD
    E_TRAILING = CUR_TRAILING
    E_COUNT = 5
    E_NEG = CUR_NEG
    E_NOMEM = 7
    E_HEADER = 8
    E_CRC = 9
    E_SPECIAL = 10          # not an error: the batch needs the GIL

cdef enum:                  # batch retention (Kafka's BatchRetention)
    DELETE = 0
    DELETE_EMPTY = 1
    RETAIN_EMPTY = 2


# -- byte helpers ---------------------------------------------------------------------------

cdef inline uint16_t be16(const uint8_t* p) noexcept nogil:
    return (<uint16_t>p[0] << 8) | p[1]

cdef inline uint32_t be32(const uint8_t* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]

cdef inline uint64_t be64(const uint8_t* p) noexcept nogil:
    return (<uint64_t>be32(p) << 32) | be32(p + 4)

cdef inline void put16(uint8_t* p, uint16_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 8); p[1] = <uint8_t>v

cdef inline void put32(uint8_t* p, uint32_t v) noexcept nogil:
    p[0] = <uint8_t>(v >> 24); p[1] = <uint8_t>(v >> 16); p[2] = <uint8_t>(v >> 8); p[3] = <uint8_t>v

cdef inline void put64(uint8_t* p, uint64_t v) noexcept nogil:
    put32(p, <uint32_t>(v >> 32)); put32(p + 4, <uint32_t>v)

cdef inline uint64_t le64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v = 0
    cdef int i
    for i in range(8):
        v |= (<uint64_t>p[i]) << (8 * i)
    return v

cdef inline uint64_t rotl64(uint64_t x, int r) noexcept nogil:
    return (x << r) | (x >> (64 - r))

cdef inline uint64_t fmix64(uint64_t k) noexcept nogil:
    k ^= k >> 33
    k *= 0xff51afd7ed558ccdULL
    k ^= k >> 33
    k *= 0xc4ceb9fe1a85ec53ULL
    k ^= k >> 33
    return k


cdef void murmur3_128(const uint8_t* data, Py_ssize_t n, uint64_t* out1, uint64_t* out2) noexcept nogil:
    """MurmurHash3 x64 128-bit, seed 0 (Austin Appleby's public-domain algorithm)."""
    cdef uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL
    cdef uint64_t h1 = 0, h2 = 0, k1, k2
    cdef Py_ssize_t i, nblocks = n // 16
    cdef const uint8_t* tail
    cdef int rest
    for i in range(nblocks):
        k1 = le64(data + 16 * i)
        k2 = le64(data + 16 * i + 8)
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5
    tail = data + nblocks * 16
    rest = <int>(n & 15)
    k1 = 0
    k2 = 0
    if rest > 8:
        for i in range(rest - 1, 7, -1):
            k2 ^= (<uint64_t>tail[i]) << (8 * (i - 8))
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2
    if rest > 0:
        for i in range((rest if rest < 8 else 8) - 1, -1, -1):
            k1 ^= (<uint64_t>tail[i]) << (8 * i)
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1
    h1 ^= <uint64_t>n
    h2 ^= <uint64_t>n
    h1 += h2
    h2 += h1
    h1 = fmix64(h1)
    h2 = fmix64(h2)
    h1 += h2
    h2 += h1
    out1[0] = h1
    out2[0] = h2


def hash_key(key):
    """(h1, h2): the 128-bit hash the offset map stores for `key` (bytes-like)."""
    cdef const uint8_t[::1] mv = memoryview(key).cast("B")
    cdef uint64_t h1, h2
    murmur3_128(&mv[0] if mv.shape[0] else NULL, mv.shape[0], &h1, &h2)
    return h1, h2


# -- the offset map -----------------------------------------------------------------------------

cdef struct Slot:
    uint64_t h1
    uint64_t h2
    int64_t offset1           # offset + 1; 0 = empty slot


@cython.final
cdef class OffsetMap:
    """Key hash -> latest offset in a fixed amount of memory (Kafka's SkimpyOffsetMap)."""
    cdef Slot* table
    cdef readonly Py_ssize_t slots
    cdef readonly Py_ssize_t max_entries
    cdef readonly Py_ssize_t size
    cdef readonly int64_t latest_offset
    cdef readonly double load_factor

    def __cinit__(self, Py_ssize_t memory, double load_factor=0.9):
        if not 0 < load_factor <= 1:
            raise ValueError(f"load factor {load_factor} is not in (0, 1]")
        self.slots = memory // sizeof(Slot)
        # one slot always stays empty: probing ends there
        self.max_entries = min(<Py_ssize_t>(self.slots * load_factor), self.slots - 1)
        if self.max_entries < 1:
            raise ValueError(f"{memory} bytes of offset map hold no key: increase "
                             f"log.cleaner.dedupe.buffer.size or decrease log.cleaner.threads")
        self.load_factor = load_factor
        self.table = <Slot*>calloc(self.slots, sizeof(Slot))
        if self.table == NULL:
            raise MemoryError(f"cannot allocate an offset map of {memory} bytes")
        self.latest_offset = -1

    def __dealloc__(self):
        free(self.table)

    @property
    def memory(self):
        return self.slots * sizeof(Slot)

    @property
    def utilization(self):
        return self.size / self.slots

    cdef inline bint full(self) noexcept nogil:
        return self.size >= self.max_entries

    @cython.boundscheck(False)
    @cython.wraparound(False)
    cdef inline Py_ssize_t find(self, uint64_t h1, uint64_t h2) noexcept nogil:
        """Index of the slot holding (h1, h2), or of the empty slot where it would go. The table
        always has an empty slot: max_entries <= slots and puts stop at max_entries."""
        cdef Py_ssize_t i = <Py_ssize_t>(h1 % <uint64_t>self.slots)
        while self.table[i].offset1 != 0 and (self.table[i].h1 != h1 or self.table[i].h2 != h2):
            i += 1
            if i == self.slots:
                i = 0
        return i

    cdef int put_hash(self, uint64_t h1, uint64_t h2, int64_t offset) noexcept nogil:
        """0 when stored, -1 when the key is new and the map is full."""
        cdef Py_ssize_t i = self.find(h1, h2)
        if self.table[i].offset1 == 0:
            if self.size >= self.max_entries:
                return -1
            self.table[i].h1 = h1
            self.table[i].h2 = h2
            self.size += 1
        self.table[i].offset1 = offset + 1
        if offset > self.latest_offset:
            self.latest_offset = offset
        return 0

    cdef inline int64_t get_hash(self, uint64_t h1, uint64_t h2) noexcept nogil:
        return self.table[self.find(h1, h2)].offset1 - 1

    cdef inline int64_t get_key(self, const uint8_t* key, Py_ssize_t n) noexcept nogil:
        cdef uint64_t h1, h2
        murmur3_128(key, n, &h1, &h2)
        return self.get_hash(h1, h2)

    def put(self, key, int64_t offset):
        """Map `key` to `offset`; OverflowError when the key is new and the map is full."""
        h1, h2 = hash_key(key)
        if self.put_hash(h1, h2, offset) < 0:
            raise OverflowError(f"offset map is full ({self.size} of {self.max_entries} keys)")

    def get(self, key):
        """The offset stored for `key`, or -1."""
        h1, h2 = hash_key(key)
        return self.get_hash(h1, h2)

    cdef inline void bump_latest(self, int64_t offset) noexcept nogil:
        if offset > self.latest_offset:
            self.latest_offset = offset

    def update_latest_offset(self, int64_t offset):
        self.bump_latest(offset)

    def clear(self):
        """Empty the map (tens of MiB: the memset runs without the GIL)."""
        cdef size_t n = self.slots * sizeof(Slot)
        if self.size:
            with nogil:
                memset(self.table, 0, n)
        self.size = 0
        self.latest_offset = -1

    def __len__(self):
        return self.size


cdef struct Rec:
    Py_ssize_t start          # the length varint
    Py_ssize_t end            # after the record
    int32_t body_len
    RecordFields f            # what follows the length (record_cursor.pxd)


cdef int parse_record(Cur* c, Rec* r) noexcept nogil:
    """One record at c.pos (advances past it). Fields must stay inside the declared length."""
    cdef Py_ssize_t outer_end = c.end
    cdef int rc
    r.start = c.pos
    rc = cur_varint(c, &r.body_len)
    if rc:
        return rc
    if r.body_len < 0 or r.body_len > outer_end - c.pos:
        c.err = r.start
        return E_RECORD_LENGTH
    r.end = c.pos + r.body_len
    c.end = r.end
    rc = cur_record_fields(c, &r.f)
    c.end = outer_end
    if rc:
        return rc
    if c.pos != r.end:
        c.err = r.start
        return E_TRAILING
    return OK


cdef object _error(int code, Py_ssize_t at, Py_ssize_t base):
    """The exception for a nogil error code at buffer position `at` (+ base: file position)."""
    reasons = {E_VARINT: "truncated or over-long varint",
               E_RECORD_LENGTH: "record length outside its batch",
               E_FIELD: "record field runs past the record's declared length",
               E_TRAILING: "record fields do not fill its declared length",
               E_COUNT: "record count does not match the records in the batch",
               E_NEG: "negative length",
               E_HEADER: "invalid batch header",
               E_CRC: "CRC mismatch"}
    if code == E_NOMEM:
        return MemoryError("cleaner buffer allocation failed")
    if code in (E_HEADER, E_CRC):
        return CorruptRecordError(reasons[code], base + at)
    return InvalidRecordError(reasons.get(code, f"error {code}"), base + at)


# -- growable output buffer ---------------------------------------------------------------------

cdef struct Buf:
    uint8_t* p
    Py_ssize_t len
    Py_ssize_t cap


cdef inline int buf_reserve(Buf* b, Py_ssize_t extra) noexcept nogil:
    cdef Py_ssize_t cap
    cdef uint8_t* q
    if b.len + extra <= b.cap:
        return OK
    cap = b.cap * 2 if b.cap else 65536
    while cap < b.len + extra:
        cap *= 2
    q = <uint8_t*>realloc(b.p, cap)
    if q == NULL:
        return E_NOMEM
    b.p = q
    b.cap = cap
    return OK


cdef inline int buf_put(Buf* b, const uint8_t* src, Py_ssize_t n) noexcept nogil:
    if buf_reserve(b, n):
        return E_NOMEM
    if n:
        memcpy(b.p + b.len, src, n)
    b.len += n
    return OK


cdef inline Py_ssize_t put_uvarint(uint8_t* q, uint64_t u) noexcept nogil:
    cdef Py_ssize_t n = 0
    while u >= 0x80:
        q[n] = <uint8_t>((u & 0x7F) | 0x80)
        n += 1
        u >>= 7
    q[n] = <uint8_t>u
    return n + 1


cdef inline uint64_t zigzag64(int64_t v) noexcept nogil:
    return (<uint64_t>v << 1) ^ <uint64_t>(v >> 63)


cdef inline uint64_t zigzag32(int32_t v) noexcept nogil:
    return <uint32_t>((<uint32_t>v << 1) ^ <uint32_t>(v >> 31))


# -- batches --------------------------------------------------------------------------------------

cdef struct Batch:
    Py_ssize_t pos
    Py_ssize_t size
    int64_t base_offset
    int32_t leader_epoch
    uint32_t crc
    int16_t attributes
    int32_t last_offset_delta
    int64_t base_timestamp
    int64_t max_timestamp
    int64_t producer_id
    int16_t producer_epoch
    int32_t base_sequence
    int32_t count


cdef int read_batch(const uint8_t* p, Py_ssize_t pos, Py_ssize_t end, Batch* b, bint* whole) noexcept nogil:
    """Header of the batch at pos; whole = 0 when it does not fit before `end` (read more)."""
    cdef int32_t length
    cdef const uint8_t* q = p + pos
    whole[0] = 0
    if end - pos < OVERHEAD:
        return OK
    length = <int32_t>be32(q + 8)
    if length < MIN_BATCH_LENGTH:
        return E_HEADER
    if OVERHEAD + <Py_ssize_t>length > end - pos:
        return OK
    if q[16] != 2:
        return E_HEADER
    whole[0] = 1
    b.pos = pos
    b.size = OVERHEAD + <Py_ssize_t>length
    b.base_offset = <int64_t>be64(q)
    b.leader_epoch = <int32_t>be32(q + 12)
    b.crc = be32(q + 17)
    b.attributes = <int16_t>be16(q + 21)
    b.last_offset_delta = <int32_t>be32(q + 23)
    b.base_timestamp = <int64_t>be64(q + 27)
    b.max_timestamp = <int64_t>be64(q + 35)
    b.producer_id = <int64_t>be64(q + 43)
    b.producer_epoch = <int16_t>be16(q + 51)
    b.base_sequence = <int32_t>be32(q + 53)
    b.count = <int32_t>be32(q + 57)
    if b.count < 0 or b.last_offset_delta < 0:
        return E_HEADER
    if crc32c_update(0, q + CRC_START, b.size - CRC_START) != b.crc:
        return E_CRC
    return OK


cdef inline int64_t last_offset(Batch* b) noexcept nogil:
    return b.base_offset + b.last_offset_delta


cdef inline bint special(Batch* b) noexcept nogil:
    """Needs the GIL: compressed, transactional or control."""
    return (b.attributes & 0x07) != 0 or (b.attributes & (TXN_MASK | CONTROL_MASK)) != 0


cdef int walk_keys(OffsetMap m, const uint8_t* p, Py_ssize_t start, Py_ssize_t end, Batch* b,
                   int64_t start_offset, Py_ssize_t* err_pos, bint* full) noexcept nogil:
    """Offset-map pass over one batch's records section [start, end)."""
    cdef Cur c
    cdef Rec r
    cdef int32_t i
    cdef int rc
    cdef int64_t offset
    cdef uint64_t h1, h2
    c.p = p
    c.pos = start
    c.end = end
    for i in range(b.count):
        if c.pos >= c.end:
            err_pos[0] = c.pos
            return E_COUNT
        rc = parse_record(&c, &r)
        if rc:
            err_pos[0] = c.err
            return rc
        offset = b.base_offset + r.f.offset_delta
        if r.f.key_len >= 0 and offset >= start_offset:
            if m.full():
                full[0] = 1
                return OK
            murmur3_128(p + r.f.key_pos, r.f.key_len, &h1, &h2)
            if m.put_hash(h1, h2, offset) < 0:          # cannot happen: full() was checked
                full[0] = 1
                return OK
    if c.pos != c.end:
        err_pos[0] = c.pos
        return E_COUNT
    return OK


# -- transactions (Kafka's CleanedTransactionMetadata) ------------------------------------------

@cython.final
cdef class TxnMetadata:
    """Aborted transactions (from the transaction index: (producer_id, first_offset, last_offset))
    and the transactions seen so far in this pass. `on_batch` says whether a data batch belongs to
    an aborted transaction (discard); `on_control` whether a marker may be discarded (every batch
    of its transaction is already gone)."""
    cdef list aborted               # sorted by first offset, consumed from the front
    cdef Py_ssize_t next_aborted
    cdef dict ongoing_aborted       # producer id -> last observed batch offset (-1 none)
    cdef set ongoing_committed

    def __cinit__(self, aborted=()):
        self.aborted = sorted(aborted, key=lambda t: t[1])
        self.next_aborted = 0
        self.ongoing_aborted = {}
        self.ongoing_committed = set()

    def add_aborted(self, aborted):
        rest = self.aborted[self.next_aborted:] + list(aborted)
        self.aborted = sorted(rest, key=lambda t: t[1])
        self.next_aborted = 0

    cdef int consume_up_to(self, int64_t offset) except -1:
        while self.next_aborted < len(self.aborted) and self.aborted[self.next_aborted][1] <= offset:
            pid = self.aborted[self.next_aborted][0]
            self.ongoing_aborted[pid] = -1
            self.next_aborted += 1
        return 0

    cpdef bint on_batch(self, int64_t producer_id, bint transactional, int64_t last_offset):
        self.consume_up_to(last_offset)
        if not transactional:
            return False
        if producer_id in self.ongoing_aborted:
            self.ongoing_aborted[producer_id] = last_offset
            return True
        self.ongoing_committed.add(producer_id)
        return False

    cpdef bint on_control(self, int64_t producer_id, int control_type, int64_t last_offset):
        """control_type: 0 ABORT, 1 COMMIT, -1 empty batch (already cleaned), else unknown."""
        self.consume_up_to(last_offset)
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


cdef int control_type_of(const uint8_t* p, Py_ssize_t start, Py_ssize_t end, int32_t count):
    """Control record key: i16 version | i16 type; -1 for an empty control batch."""
    cdef Cur c
    cdef Rec r
    if count == 0:
        return -1
    c.p = p
    c.pos = start
    c.end = end
    if parse_record(&c, &r) != OK or r.f.key_len < 4:
        return -2
    return <int16_t>be16(p + r.f.key_pos + 2)


# -- offset map build -------------------------------------------------------------------------

def build_offset_map(OffsetMap m, data, Py_ssize_t pos, int64_t start_offset, TxnMetadata txn,
                     Py_ssize_t base_position=0, max_decompressed_size=None):
    """Add the keys of every whole batch in data[pos:] to the map (records at offsets >= start_offset;
    aborted transactions and markers skipped). Returns (position after the last batch read, full).
    `base_position` (data[0]'s file position) only makes error positions absolute."""
    cdef const uint8_t[::1] mv = memoryview(data).cast("B")
    cdef const uint8_t* p = &mv[0] if mv.shape[0] else NULL
    cdef Py_ssize_t end = mv.shape[0], err_pos = 0
    cdef Batch b
    cdef bint whole = 0, full = 0
    cdef int rc = OK
    while pos < end and not full:
        with nogil:
            rc = _map_plain_batches(m, p, &pos, end, start_offset, &b, &whole, &err_pos, &full)
        if rc == E_HEADER or rc == E_CRC:
            raise _error(rc, pos, base_position)
        if rc != OK and rc != E_SPECIAL:
            raise _error(rc, err_pos, base_position)
        if rc == OK:
            break                                     # end of data or a partial batch
        _map_special_batch(m, data, p, &b, start_offset, txn, base_position,
                           max_decompressed_size, &full)
        if not full:
            pos += b.size
    return pos, bool(full)


cdef int _map_plain_batches(OffsetMap m, const uint8_t* p, Py_ssize_t* pos, Py_ssize_t end,
                            int64_t start_offset, Batch* b, bint* whole, Py_ssize_t* err_pos,
                            bint* full) noexcept nogil:
    """Plain batches until a special one (E_SPECIAL, b filled), the end or a partial batch (OK)."""
    cdef int rc
    while pos[0] < end:
        rc = read_batch(p, pos[0], end, b, whole)
        if rc:
            return rc
        if not whole[0]:
            return OK
        if special(b):
            return E_SPECIAL
        if last_offset(b) >= start_offset:
            rc = walk_keys(m, p, pos[0] + HEADER, pos[0] + b.size, b, start_offset, err_pos, full)
            if rc:
                return rc
            if full[0]:
                return OK
            m.bump_latest(last_offset(b))
        pos[0] += b.size
    return OK


cdef int _map_special_batch(OffsetMap m, object data, const uint8_t* p, Batch* b,
                            int64_t start_offset, TxnMetadata txn, Py_ssize_t base_position,
                            object max_size, bint* full) except -1:
    cdef int codec = b.attributes & 0x07
    cdef Py_ssize_t err_pos = 0
    cdef int rc
    cdef const uint8_t[::1] rmv
    if b.attributes & CONTROL_MASK:
        if codec == 0:
            txn.on_control(b.producer_id, control_type_of(p, b.pos + HEADER, b.pos + b.size,
                                                          b.count), last_offset(b))
    elif not txn.on_batch(b.producer_id, (b.attributes & TXN_MASK) != 0, last_offset(b)):
        if last_offset(b) >= start_offset:
            if codec:
                blob = _decompress(data, b, base_position, max_size)
                rmv = memoryview(blob).cast("B")
                with nogil:
                    rc = walk_keys(m, &rmv[0] if rmv.shape[0] else NULL, 0, rmv.shape[0], b,
                                   start_offset, &err_pos, full)
                if rc:
                    raise InvalidRecordError(f"{_error(rc, 0, 0).args[0]} (decompressed batch)",
                                             base_position + b.pos)
            else:
                with nogil:
                    rc = walk_keys(m, p, b.pos + HEADER, b.pos + b.size, b, start_offset,
                                   &err_pos, full)
                if rc:
                    raise _error(rc, err_pos, base_position)
    if not full[0] and last_offset(b) >= start_offset:
        m.update_latest_offset(last_offset(b))
    return 0


cdef object _decompress(object data, Batch* b, Py_ssize_t base_position, object max_size):
    section = memoryview(data).cast("B")[b.pos + HEADER:b.pos + b.size]
    return _compression.decompress(b.attributes & 0x07, section, max_size,
                                   base_position + b.pos + HEADER)


# -- cleaning -----------------------------------------------------------------------------------

cdef struct Filtered:
    int32_t kept
    int32_t dropped
    bint tombstones           # a kept record has a null value
    int64_t max_ts            # over kept records (CreateTime)


@cython.final
cdef class SegmentCleaner:
    """Copies the retained part of source batches into one destination (cleaned) segment and
    builds its offset and time index entries (Kafka's Cleaner.cleanInto + MemoryRecords.filterTo).

        c = SegmentCleaner(map, now, delete_retention_ms, active_producers, txn, upper_bound)
        c.start_segment(base_offset, index_interval_bytes)
        out, consumed = c.clean(chunk, pos, base_position)     # repeat; write `out` to the file
        offset_index, time_index = c.finish_segment()

    active_producers: {producer_id: (last_data_offset or -1, producer_epoch)}.
    upper_bound: the cleaning round's first uncleanable offset (its last batch keeps its header)."""
    cdef OffsetMap map
    cdef TxnMetadata txn
    cdef readonly int64_t now
    cdef readonly int64_t delete_retention_ms
    cdef readonly int64_t upper_bound
    cdef dict producers
    cdef int64_t* prod_ids
    cdef int64_t* prod_last
    cdef int16_t* prod_epoch
    cdef Py_ssize_t n_prod
    cdef object max_decompressed
    # destination segment state
    cdef int64_t dest_base
    cdef int64_t dest_size
    cdef int64_t index_interval
    cdef int64_t since_index
    cdef int64_t max_ts_so_far
    cdef int64_t offset_of_max_ts
    cdef int64_t last_time_entry_ts
    cdef Buf oidx
    cdef Buf tidx
    cdef Buf tmp
    cdef Buf out
    # stats
    cdef readonly int64_t messages_read
    cdef readonly int64_t bytes_read
    cdef readonly int64_t messages_retained
    cdef readonly int64_t bytes_retained
    cdef readonly int64_t invalid_messages
    cdef readonly int64_t batches_rewritten
    cdef readonly int64_t latest_delete_horizon
    # per-batch scratch
    cdef bint discard_records
    cdef int32_t pending_kept
    cdef int64_t pending_max_ts
    cdef bint pending_horizon

    def __cinit__(self, OffsetMap m, int64_t now, int64_t delete_retention_ms, active_producers,
                  TxnMetadata txn, int64_t upper_bound, max_decompressed_size=None):
        self.map = m
        self.txn = txn
        self.now = now
        self.delete_retention_ms = delete_retention_ms
        self.upper_bound = upper_bound
        self.max_decompressed = max_decompressed_size
        self.latest_delete_horizon = -1
        items = sorted(dict(active_producers).items())
        self.n_prod = len(items)
        self.prod_ids = <int64_t*>malloc(max(1, self.n_prod) * sizeof(int64_t))
        self.prod_last = <int64_t*>malloc(max(1, self.n_prod) * sizeof(int64_t))
        self.prod_epoch = <int16_t*>malloc(max(1, self.n_prod) * sizeof(int16_t))
        if self.prod_ids == NULL or self.prod_last == NULL or self.prod_epoch == NULL:
            raise MemoryError()
        for i, (pid, (last, epoch)) in enumerate(items):
            self.prod_ids[i] = pid
            self.prod_last[i] = last
            self.prod_epoch[i] = epoch

    def __dealloc__(self):
        free(self.prod_ids)
        free(self.prod_last)
        free(self.prod_epoch)
        free(self.oidx.p)
        free(self.tidx.p)
        free(self.tmp.p)
        free(self.out.p)

    # ---- destination segment ----------------------------------------------------------------

    def start_segment(self, int64_t base_offset, int64_t index_interval_bytes):
        self.dest_base = base_offset
        self.dest_size = 0
        self.index_interval = index_interval_bytes
        self.since_index = 0
        self.max_ts_so_far = -1
        self.offset_of_max_ts = -1
        self.last_time_entry_ts = -1
        self.oidx.len = 0
        self.tidx.len = 0

    @property
    def size(self):
        return self.dest_size

    @property
    def max_timestamp(self):
        return self.max_ts_so_far

    def finish_segment(self):
        """(offset index bytes, time index bytes) of the destination segment, with the final
        time index entry a segment gets when it becomes inactive."""
        if self.max_ts_so_far >= 0:
            self.time_entry(self.max_ts_so_far, self.offset_of_max_ts)
        return (PyBytes_FromStringAndSize(<char*>self.oidx.p, self.oidx.len),
                PyBytes_FromStringAndSize(<char*>self.tidx.p, self.tidx.len))

    cdef int time_entry(self, int64_t ts, int64_t offset) noexcept nogil:
        """time index entry: i64 timestamp | u32 relative offset (only when ts grows)"""
        if ts <= self.last_time_entry_ts:
            return OK
        if buf_reserve(&self.tidx, 12):
            return E_NOMEM
        put64(self.tidx.p + self.tidx.len, <uint64_t>ts)
        put32(self.tidx.p + self.tidx.len + 8, <uint32_t>(offset - self.dest_base))
        self.tidx.len += 12
        self.last_time_entry_ts = ts
        return OK

    cdef int index_batch(self, int64_t batch_last_offset, int64_t batch_max_ts,
                         Py_ssize_t batch_size) noexcept nogil:
        """What LogSegment.append does for one appended batch (offset index entry:
        u32 relative offset | u32 position)."""
        if batch_max_ts > self.max_ts_so_far:
            self.max_ts_so_far = batch_max_ts
            self.offset_of_max_ts = batch_last_offset
        if self.since_index > self.index_interval:
            if buf_reserve(&self.oidx, 8):
                return E_NOMEM
            put32(self.oidx.p + self.oidx.len, <uint32_t>(batch_last_offset - self.dest_base))
            put32(self.oidx.p + self.oidx.len + 4, <uint32_t>self.dest_size)
            self.oidx.len += 8
            if self.time_entry(self.max_ts_so_far, self.offset_of_max_ts):
                return E_NOMEM
            self.since_index = 0
        self.since_index += batch_size
        self.dest_size += batch_size
        return OK

    # ---- the filter ---------------------------------------------------------------------------

    def clean(self, data, Py_ssize_t pos=0, Py_ssize_t base_position=0):
        """Filter every whole batch in data[pos:]; returns (retained bytes, position after the last
        whole batch). Errors carry base_position + their position in `data`."""
        cdef const uint8_t[::1] mv = memoryview(data).cast("B")
        cdef const uint8_t* p = &mv[0] if mv.shape[0] else NULL
        cdef Py_ssize_t end = mv.shape[0], err_pos = 0
        cdef Batch b
        cdef bint whole = 0
        cdef int rc = OK
        self.out.len = 0
        while pos < end:
            with nogil:
                rc = self.clean_plain(p, &pos, end, &b, &whole, &err_pos)
            if rc == E_HEADER or rc == E_CRC:
                raise _error(rc, pos, base_position)
            if rc != OK and rc != E_SPECIAL:
                raise _error(rc, err_pos, base_position)
            if rc == OK:
                break
            self.clean_special(data, p, &b, base_position)
            pos += b.size
        return PyBytes_FromStringAndSize(<char*>self.out.p, self.out.len), pos

    cdef int clean_plain(self, const uint8_t* p, Py_ssize_t* pos, Py_ssize_t end, Batch* b,
                         bint* whole, Py_ssize_t* err_pos) noexcept nogil:
        cdef int rc
        cdef int retention
        while pos[0] < end:
            rc = read_batch(p, pos[0], end, b, whole)
            if rc:
                return rc
            if not whole[0]:
                return OK
            if special(b):
                return E_SPECIAL
            retention = self.batch_retention(b, 0)
            rc = self.filter_batch(p, b, p + b.pos + HEADER, b.size - HEADER, retention, 0, 0,
                                   err_pos)
            if rc:
                return rc
            pos[0] += b.size
        return OK

    cdef int clean_special(self, object data, const uint8_t* p, Batch* b,
                           Py_ssize_t base_position) except -1:
        cdef int codec = b.attributes & 0x07
        cdef bint control = (b.attributes & CONTROL_MASK) != 0
        cdef bint can_discard
        cdef int retention, rc
        cdef Py_ssize_t err_pos = 0
        cdef const uint8_t[::1] rmv
        if control:
            can_discard = self.txn.on_control(
                b.producer_id, control_type_of(p, b.pos + HEADER, b.pos + b.size, b.count)
                if codec == 0 else -2, last_offset(b))
        else:
            can_discard = self.txn.on_batch(b.producer_id, (b.attributes & TXN_MASK) != 0,
                                            last_offset(b))
        retention = self.batch_retention(b, can_discard)
        if codec == 0:
            with nogil:
                rc = self.filter_batch(p, b, p + b.pos + HEADER, b.size - HEADER, retention,
                                       can_discard and control, 0, &err_pos)
            if rc:
                raise _error(rc, err_pos, base_position)
            return 0
        if retention == DELETE:
            self.messages_read += b.count
            self.bytes_read += b.size
            return 0
        blob = _decompress(data, b, base_position, self.max_decompressed)
        rmv = memoryview(blob).cast("B")
        with nogil:
            rc = self.filter_batch(p, b, &rmv[0] if rmv.shape[0] else NULL, rmv.shape[0],
                                   retention, can_discard and control, 1, &err_pos)
        if rc == E_SPECIAL:                          # retained records need recompressing
            self.emit_compressed(p, b, codec)
            return 0
        if rc:
            raise InvalidRecordError(f"{_error(rc, 0, 0).args[0]} (decompressed batch)",
                                     base_position + b.pos)
        return 0

    cdef int batch_retention(self, Batch* b, bint can_discard) noexcept nogil:
        """RETAIN_EMPTY for an active producer's last batch and the round's last batch;
        DELETE when every record goes; else DELETE_EMPTY (kept only if records remain)."""
        cdef bint control = (b.attributes & CONTROL_MASK) != 0
        cdef bint discard_records
        cdef Py_ssize_t i
        cdef int64_t last_data
        if control:
            discard_records = can_discard and (b.attributes & HORIZON_MASK) != 0 and \
                b.base_timestamp <= self.now
        else:
            discard_records = can_discard
        self.discard_records = discard_records
        if b.producer_id >= 0:
            i = self.find_producer(b.producer_id)
            if i >= 0:
                last_data = self.prod_last[i]
                if (last_data >= 0 and last_offset(b) == last_data) or \
                        (last_data < 0 and control and b.producer_epoch == self.prod_epoch[i]):
                    return RETAIN_EMPTY
        if last_offset(b) + 1 == self.upper_bound:
            return RETAIN_EMPTY
        return DELETE if discard_records else DELETE_EMPTY

    cdef Py_ssize_t find_producer(self, int64_t pid) noexcept nogil:
        cdef Py_ssize_t lo = 0, hi = self.n_prod - 1, mid
        while lo <= hi:
            mid = (lo + hi) // 2
            if self.prod_ids[mid] == pid:
                return mid
            if self.prod_ids[mid] < pid:
                lo = mid + 1
            else:
                hi = mid - 1
        return -1

    cdef bint keep_record(self, Batch* b, const uint8_t* rp, Rec* r) noexcept nogil:
        """Kafka's shouldRetainRecord for a data record."""
        cdef int64_t offset = b.base_offset + r.f.offset_delta
        cdef int64_t found
        if offset > self.map.latest_offset:
            return True
        if r.f.key_len < 0:
            self.invalid_messages += 1
            return False
        found = self.map.get_key(rp + r.f.key_pos, r.f.key_len)
        if offset < found:
            return False
        if r.f.value_len >= 0:
            return True
        return not (b.attributes & HORIZON_MASK) or self.now < b.base_timestamp

    cdef int filter_batch(self, const uint8_t* p, Batch* b, const uint8_t* rp, Py_ssize_t rlen,
                          int retention, bint marker_for_empty_txn, bint compressed,
                          Py_ssize_t* err_pos) noexcept nogil:
        """Filter one batch whose records section is rp[0:rlen] (decompressed when compressed).
        Uncompressed results go to self.out; a compressed batch that must be rebuilt returns
        E_SPECIAL with its records in self.tmp (the caller recompresses)."""
        cdef Filtered f
        cdef int rc
        cdef bint control = (b.attributes & CONTROL_MASK) != 0
        cdef bint need_horizon
        self.messages_read += b.count
        self.bytes_read += b.size
        if retention == DELETE:
            return OK
        rc = self.collect(b, rp, rlen, control, &f, err_pos)
        if rc:
            return rc
        if f.kept == 0:
            if retention == RETAIN_EMPTY:
                return self.emit_empty(b)
            return OK
        need_horizon = (f.tombstones or marker_for_empty_txn) and not (b.attributes & HORIZON_MASK)
        if f.dropped == 0 and not need_horizon:
            self.messages_retained += f.kept
            return self.emit_raw(p + b.pos, b)
        if need_horizon:
            rc = self.rebase(b, self.now + self.delete_retention_ms)
            if rc:
                return rc
        if compressed:
            self.pending_kept = f.kept
            self.pending_max_ts = f.max_ts
            self.pending_horizon = need_horizon
            return E_SPECIAL
        return self.emit_rebuilt(b, f.kept, f.max_ts, need_horizon, self.tmp.p, self.tmp.len)

    cdef int collect(self, Batch* b, const uint8_t* rp, Py_ssize_t rlen, bint control,
                     Filtered* f, Py_ssize_t* err_pos) noexcept nogil:
        """Kept records, byte for byte, into self.tmp."""
        cdef Cur c
        cdef Rec r
        cdef int32_t i
        cdef int rc
        cdef int64_t ts
        c.p = rp
        c.pos = 0
        c.end = rlen
        f.kept = 0
        f.dropped = 0
        f.tombstones = 0
        f.max_ts = -1
        self.tmp.len = 0
        for i in range(b.count):
            if c.pos >= c.end:
                err_pos[0] = c.pos
                return E_COUNT
            rc = parse_record(&c, &r)
            if rc:
                err_pos[0] = c.err
                return rc
            if self.discard_records or not (control or self.keep_record(b, rp, &r)):
                f.dropped += 1
                continue
            f.kept += 1
            if r.f.value_len < 0:
                f.tombstones = 1
            ts = b.base_timestamp + r.f.ts_delta
            if ts > f.max_ts:
                f.max_ts = ts
            if buf_put(&self.tmp, rp + r.start, r.end - r.start):
                return E_NOMEM
        if c.pos != c.end:
            err_pos[0] = c.pos
            return E_COUNT
        return OK

    cdef int rebase(self, Batch* b, int64_t new_base) noexcept nogil:
        """Re-encode the records in self.tmp with timestamp deltas relative to new_base."""
        cdef Buf src = self.tmp
        cdef Buf dst
        cdef Cur c
        cdef Rec r
        cdef uint8_t head[20]
        cdef Py_ssize_t hn, body
        cdef int rc
        dst.p = NULL
        dst.len = 0
        dst.cap = 0
        if buf_reserve(&dst, src.len + 64):
            return E_NOMEM
        c.p = src.p
        c.pos = 0
        c.end = src.len
        while c.pos < c.end:
            rc = parse_record(&c, &r)
            if rc:
                free(dst.p)
                return rc
            # length | attributes | new ts delta | everything after the old ts delta
            hn = put_uvarint(head + 10, zigzag64(b.base_timestamp + r.f.ts_delta - new_base))
            body = 1 + hn + (r.end - r.f.ts_end)
            if buf_reserve(&dst, 5 + body):
                free(dst.p)
                return E_NOMEM
            dst.len += put_uvarint(dst.p + dst.len, zigzag32(<int32_t>body))
            dst.p[dst.len] = src.p[r.f.ts_start - 1]
            memcpy(dst.p + dst.len + 1, head + 10, hn)
            memcpy(dst.p + dst.len + 1 + hn, src.p + r.f.ts_end, r.end - r.f.ts_end)
            dst.len += body
        free(self.tmp.p)
        self.tmp = dst
        return OK

    cdef int emit_raw(self, const uint8_t* q, Batch* b) noexcept nogil:
        if buf_put(&self.out, q, b.size):
            return E_NOMEM
        self.bytes_retained += b.size
        return self.index_batch(last_offset(b), b.max_timestamp, b.size)

    cdef int write_header(self, uint8_t* h, Batch* b, Py_ssize_t total, int16_t attributes,
                          int64_t base_ts, int64_t max_ts, int32_t count) noexcept nogil:
        put64(h, <uint64_t>b.base_offset)
        put32(h + 8, <uint32_t>(total - OVERHEAD))
        put32(h + 12, <uint32_t>b.leader_epoch)
        h[16] = 2
        put16(h + 21, <uint16_t>attributes)
        put32(h + 23, <uint32_t>b.last_offset_delta)
        put64(h + 27, <uint64_t>base_ts)
        put64(h + 35, <uint64_t>max_ts)
        put64(h + 43, <uint64_t>b.producer_id)
        put16(h + 51, <uint16_t>b.producer_epoch)
        put32(h + 53, <uint32_t>b.base_sequence)
        put32(h + 57, <uint32_t>count)
        put32(h + 17, crc32c_update(0, h + CRC_START, total - CRC_START))
        return OK

    cdef int emit_empty(self, Batch* b) noexcept nogil:
        """Header only: producer fields, offsets and timestamps kept, no records, no codec."""
        cdef uint8_t* h
        cdef int16_t attributes = b.attributes & (TS_TYPE_MASK | TXN_MASK | CONTROL_MASK)
        if buf_reserve(&self.out, HEADER):
            return E_NOMEM
        h = self.out.p + self.out.len
        memset(h, 0, HEADER)
        self.write_header(h, b, HEADER, attributes, b.max_timestamp, b.max_timestamp, 0)
        self.out.len += HEADER
        self.bytes_retained += HEADER
        self.batches_rewritten += 1
        return self.index_batch(last_offset(b), b.max_timestamp, HEADER)

    cdef int64_t rebuilt_max_ts(self, Batch* b, int64_t kept_max_ts) noexcept nogil:
        if b.attributes & TS_TYPE_MASK:
            return b.max_timestamp                   # LogAppendTime: the batch's stamp
        return kept_max_ts

    cdef int emit_rebuilt(self, Batch* b, int32_t kept, int64_t kept_max_ts, bint horizon,
                          const uint8_t* records, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t total = HEADER + n
        cdef uint8_t* h
        cdef int16_t attributes = b.attributes | (HORIZON_MASK if horizon else 0)
        cdef int64_t base_ts = self.now + self.delete_retention_ms if horizon else b.base_timestamp
        cdef int64_t max_ts = self.rebuilt_max_ts(b, kept_max_ts)
        if buf_reserve(&self.out, total):
            return E_NOMEM
        h = self.out.p + self.out.len
        memset(h, 0, HEADER)
        if n:
            memcpy(h + HEADER, records, n)
        self.write_header(h, b, total, attributes, base_ts, max_ts, kept)
        self.out.len += total
        self.messages_retained += kept
        self.bytes_retained += total
        self.batches_rewritten += 1
        if horizon or (b.attributes & HORIZON_MASK):
            if base_ts > self.latest_delete_horizon:
                self.latest_delete_horizon = base_ts
        return self.index_batch(last_offset(b), max_ts, total)

    cdef int emit_compressed(self, const uint8_t* p, Batch* b, int codec) except -1:
        blob = _compression.compress(codec, PyBytes_FromStringAndSize(<char*>self.tmp.p,
                                                                      self.tmp.len))
        cdef const uint8_t[::1] cmv = blob
        cdef int rc
        with nogil:
            rc = self.emit_rebuilt(b, self.pending_kept, self.pending_max_ts,
                                   self.pending_horizon, &cmv[0] if cmv.shape[0] else NULL,
                                   cmv.shape[0])
        if rc:
            raise MemoryError("cleaner buffer allocation failed")
        return 0
