"""Log tools: `pybroker dump-log` (Kafka's kafka-dump-log / DumpLogSegments) and
`pybroker verify-log` (a data-directory checker). Read-only: nothing here writes a file.

dump-log prints, per file:
  .log        one line per batch (base/last offset, count, producer fields, epoch, flags, delete
              horizon, position, timestamp, size, codec, CRC and whether it verifies); with
              --deep-iteration one `| offset: ...` line per record (--print-data-log adds key and
              payload; control records print their marker)
  .index      `offset: O position: P` per entry (--verify-index-only: only mismatches)
  .timeindex  `timestamp: T offset: O` per entry
  .snapshot   one line per producer
  checkpoint files (recovery point, log start, replication, cleaner offsets, leader epochs)
verify-log walks log dirs (or partition dirs) and checks, without changing anything:
  every batch's CRC, magic, codec and counts; offsets strictly increasing within and across
  segments and not below a segment's base; the batch-header chain ending exactly at the file's
  end; offset index entries increasing, each pointing at a batch start whose last offset is the
  entry's offset; time index entries increasing, each naming a batch whose max timestamp it is;
  producer snapshots' CRCs, checkpoint files' syntax. Leftover .cleaned/.swap/.deleted files are
  reported as notes (recovery completes or removes them at the next start), not as errors.
"""
import os
import struct
from dataclasses import dataclass, field

from pybroker.codec import compression
from pybroker.codec import records as _records
from pybroker.codec.errors import CodecError
from pybroker.log.checkpoint import (
    LEADER_EPOCH_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT,
    REPLICATION_OFFSET_CHECKPOINT, LeaderEpochCheckpointFile, MalformedCheckpointError,
    OffsetCheckpointFile)
from pybroker.log.cleaner import CLEANER_OFFSET_CHECKPOINT
from pybroker.log.errors import CorruptSnapshotError
from pybroker.log.producer_state import read_snapshot
from pybroker.log.segment import (
    CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX, SWAP_SUFFIX, TIME_INDEX_SUFFIX,
    check_stored_batch)

_OFFSET_ENTRY = struct.Struct(">II")     # u32 relative offset | u32 position
_TIME_ENTRY = struct.Struct(">qI")       # i64 timestamp | u32 relative offset
_OFFSET_CHECKPOINTS = (RECOVERY_POINT_CHECKPOINT, LOG_START_OFFSET_CHECKPOINT,
                       REPLICATION_OFFSET_CHECKPOINT, CLEANER_OFFSET_CHECKPOINT)
_CHUNK = 8 << 20


# ---- reading ------------------------------------------------------------------------------------

def base_offset_of(path):
    name = os.path.basename(path)
    stem = name.split(".", 1)[0]
    return int(stem) if stem.isdigit() else 0


def iter_file_batches(path, max_bytes=None):
    """(position, RecordBatch or None, problem or None) for each batch of a .log file, read in
    bounded chunks (a batch larger than a chunk is read whole); stops after a batch whose header
    cannot be read (a partial or malformed header)."""
    size = os.path.getsize(path)
    end = size if max_bytes is None else min(size, max_bytes)
    with open(path, "rb") as f:
        pos = 0
        while pos < end:
            f.seek(pos)
            data = f.read(min(_CHUNK, size - pos))
            items, consumed = _walk_chunk(data, pos, end)
            if consumed == 0 and not items:
                need = _batch_size(data)
                if need is None or pos + need > size:
                    yield pos, None, f"partial batch: {size - pos} bytes left in the file"
                    return
                f.seek(pos)
                items, consumed = _walk_chunk(f.read(need), pos, end)
            yield from items
            if consumed == 0 or (items and items[-1][1] is None):
                return
            pos += consumed


def _batch_size(data):
    if len(data) < 12:
        return None
    length = int.from_bytes(data[8:12], "big", signed=True)
    return None if length < 49 else 12 + length


def _walk_chunk(data, base, end):
    """([(position, batch, problem)], bytes consumed) for the whole batches in data."""
    items, off = [], 0
    while base + off < end and len(data) - off >= 12:
        size = _batch_size(data[off:off + 12])
        if size is None:
            items.append((base + off, None, f"batch length below the minimum at byte {base + off}"))
            return items, off
        if off + size > len(data):
            break
        try:
            batch = _records.RecordBatch(data, off)
        except CodecError as exc:
            items.append((base + off, None, f"invalid batch header: {exc}"))
            return items, off
        problem = None
        try:
            check_stored_batch(batch)
        except CodecError as exc:
            problem = str(exc)
        items.append((base + off, batch, problem))
        off += size
    return items, off


def read_offset_index(path):
    """[(offset, position)]: the entries up to the first unused (zero) slot after the first."""
    base = base_offset_of(path)
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for i in range(len(data) // 8):
        rel, pos = _OFFSET_ENTRY.unpack_from(data, 8 * i)
        if i > 0 and rel == 0 and pos == 0:
            break
        out.append((base + rel, pos))
    return out


def read_time_index(path):
    """[(timestamp, offset)]: the entries up to the first unused (zero) slot."""
    base = base_offset_of(path)
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for i in range(len(data) // 12):
        ts, rel = _TIME_ENTRY.unpack_from(data, 12 * i)
        if ts == 0 and rel == 0:
            break
        out.append((ts, base + rel))
    return out


# ---- dump ---------------------------------------------------------------------------------------

_CODEC_NAMES = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def _bool(v):
    return "true" if v else "false"


def _last_sequence(b):
    if b.base_sequence < 0:
        return -1
    return (b.base_sequence + b.last_offset_delta) % (1 << 31)


def format_batch(position, b, problem=None):
    ts_type = "LogAppendTime" if b.timestamp_type else "CreateTime"
    horizon = f"OptionalLong[{b.base_timestamp}]" if b.has_delete_horizon else "OptionalLong.empty"
    return (f"baseOffset: {b.base_offset} lastOffset: {b.last_offset} count: {b.records_count} "
            f"baseSequence: {b.base_sequence} lastSequence: {_last_sequence(b)} "
            f"producerId: {b.producer_id} producerEpoch: {b.producer_epoch} "
            f"partitionLeaderEpoch: {b.partition_leader_epoch} "
            f"isTransactional: {_bool(b.is_transactional)} isControl: {_bool(b.is_control)} "
            f"deleteHorizonMs: {horizon} position: {position} {ts_type}: {b.max_timestamp} "
            f"size: {b.size} magic: {b.magic} compresscodec: {_CODEC_NAMES.get(b.compression, '?')} "
            f"crc: {b.crc} isvalid: {_bool(problem is None)}")


def format_record(b, r, print_data):
    ts_type = "LogAppendTime" if b.timestamp_type else "CreateTime"
    seq = -1 if b.base_sequence < 0 else (b.base_sequence + r.offset_delta) % (1 << 31)
    line = (f"| offset: {r.offset} {ts_type}: {r.timestamp} "
            f"keySize: {-1 if r.key is None else len(r.key)} "
            f"valueSize: {-1 if r.value is None else len(r.value)} sequence: {seq} "
            f"headerKeys: [{', '.join(k for k, _ in r.headers)}]")
    if b.is_control and r.key is not None and len(r.key) >= 4:
        kind = {0: "ABORT", 1: "COMMIT"}.get(int.from_bytes(r.key[2:4], "big"), "UNKNOWN")
        epoch = int.from_bytes(r.value[2:6], "big", signed=True) if r.value and len(r.value) >= 6 else -1
        return line + f" endTxnMarker: {kind} coordinatorEpoch: {epoch}"
    if print_data:
        line += f" key: {_text(r.key)} payload: {_text(r.value)}"
    return line


def _text(v):
    if v is None:
        return "null"
    return v.decode("utf-8", errors="replace")


def dump_log(path, out, deep=False, print_data=False, max_bytes=None):
    print(f"Log starting offset: {base_offset_of(path)}", file=out)
    for position, b, problem in iter_file_batches(path, max_bytes):
        if b is None:
            print(f"Found a corrupt batch at position {position}: {problem}", file=out)
            return
        print(format_batch(position, b, problem), file=out)
        if (deep or print_data) and problem is None:
            try:
                for r in b.records(compression.MAX_DECOMPRESSED_SIZE):
                    print(format_record(b, r, print_data), file=out)
            except CodecError as exc:
                print(f"Found invalid records in the batch at position {position}: {exc}", file=out)


def dump_offset_index(path, out, verify_only=False):
    log_path = path[:-len(INDEX_SUFFIX)] + LOG_SUFFIX
    starts = _batch_starts(log_path) if os.path.exists(log_path) else None
    mismatches = []
    for offset, position in read_offset_index(path):
        if starts is not None:
            last = starts.get(position)
            if last != offset:
                mismatches.append((offset, position, last))
        if not verify_only:
            print(f"offset: {offset} position: {position}", file=out)
    for offset, position, last in mismatches:
        found = "no batch starts there" if last is None else f"the batch there ends at {last}"
        print(f"Mismatches in :{path}\n  Index offset: {offset}, log offset: {found} "
              f"(position {position})", file=out)


def _batch_starts(log_path):
    return {pos: b.last_offset for pos, b, _ in iter_file_batches(log_path) if b is not None}


def dump_time_index(path, out, verify_only=False):
    for ts, offset in read_time_index(path):
        if not verify_only:
            print(f"timestamp: {ts} offset: {offset}", file=out)


def dump_snapshot(path, out):
    for e in read_snapshot(path):
        print(f"producerId: {e.producer_id} producerEpoch: {e.producer_epoch} "
              f"coordinatorEpoch: {e.coordinator_epoch} "
              f"currentTxnFirstOffset: {e.current_txn_first_offset} "
              f"lastTimestamp: {e.last_timestamp} firstSequence: {e.first_seq} "
              f"lastSequence: {e.last_seq} lastOffset: {e.last_data_offset} "
              f"offsetDelta: {e.last_offset_delta}", file=out)


def dump_files(paths, out, *, deep=False, print_data=False, verify_index_only=False, max_bytes=None):
    """kafka-dump-log over `paths`; returns the number of files it could not read."""
    failures = 0
    for path in paths:
        print(f"Dumping {path}", file=out)
        try:
            _dump_one(path, out, deep, print_data, verify_index_only, max_bytes)
        except BrokenPipeError:
            raise
        except (OSError, CorruptSnapshotError, MalformedCheckpointError) as exc:
            print(f"Cannot read {path}: {exc}", file=out)
            failures += 1
    return failures


def _dump_one(path, out, deep, print_data, verify_index_only, max_bytes):
    name = os.path.basename(path)
    if name.endswith(LOG_SUFFIX):
        dump_log(path, out, deep, print_data, max_bytes)
    elif name.endswith(INDEX_SUFFIX):
        dump_offset_index(path, out, verify_index_only)
    elif name.endswith(TIME_INDEX_SUFFIX):
        dump_time_index(path, out, verify_index_only)
    elif name.endswith(".snapshot"):
        dump_snapshot(path, out)
    elif name in _OFFSET_CHECKPOINTS:
        for (t, p), o in sorted(OffsetCheckpointFile(path).read().items()):
            print(f"{t}-{p} {o}", file=out)
    elif name == LEADER_EPOCH_CHECKPOINT:
        for epoch, start in LeaderEpochCheckpointFile(path).read():
            print(f"epoch: {epoch} startOffset: {start}", file=out)
    else:
        print(f"Ignoring unknown file {path}", file=out)


# ---- verify ---------------------------------------------------------------------------------------

@dataclass
class VerifyReport:
    problems: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    partitions: int = 0
    segments: int = 0
    batches: int = 0
    bytes: int = 0

    @property
    def ok(self):
        return not self.problems


def verify_paths(paths):
    """Check log dirs or partition dirs; returns a VerifyReport."""
    report = VerifyReport()
    for path in paths:
        if not os.path.isdir(path):
            report.problems.append(f"{path}: not a directory")
            continue
        if _is_partition_dir(path):
            verify_partition(path, report)
            continue
        _verify_log_dir(path, report)
    return report


def _is_partition_dir(path):
    return any(n.endswith(LOG_SUFFIX) for n in os.listdir(path))


def _verify_log_dir(path, report):
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if name in _OFFSET_CHECKPOINTS:
            _check_checkpoint(full, report)
        elif os.path.isdir(full) and not name.startswith("__pybroker") and "-" in name:
            if name.endswith("-delete"):
                report.notes.append(f"{full}: partition directory awaiting deletion")
                continue
            verify_partition(full, report)


def _check_checkpoint(path, report):
    try:
        OffsetCheckpointFile(path).read()
    except MalformedCheckpointError as exc:
        report.problems.append(str(exc))


def verify_partition(path, report):
    report.partitions += 1
    names = sorted(os.listdir(path))
    for name in names:
        if name.endswith((CLEANED_SUFFIX, SWAP_SUFFIX, DELETED_SUFFIX)):
            report.notes.append(f"{os.path.join(path, name)}: leftover of an interrupted clean or "
                                f"deletion (completed or removed at the next start)")
    logs = sorted((n for n in names if n.endswith(LOG_SUFFIX) and n[:-4].isdigit()),
                  key=base_offset_of)
    prev_last = -1
    for name in logs:
        prev_last = _verify_segment(os.path.join(path, name), prev_last, report)
    for name in names:
        full = os.path.join(path, name)
        if name.endswith(".snapshot"):
            try:
                read_snapshot(full)
            except CorruptSnapshotError as exc:
                report.problems.append(f"{full}: {exc}")
        elif name == LEADER_EPOCH_CHECKPOINT:
            try:
                LeaderEpochCheckpointFile(full).read()
            except MalformedCheckpointError as exc:
                report.problems.append(str(exc))


def _verify_segment(log_path, prev_last, report):
    report.segments += 1
    base = base_offset_of(log_path)
    batches = {}
    for position, b, problem in iter_file_batches(log_path):
        if b is None:
            report.problems.append(f"{log_path}: {problem}")
            break
        report.batches += 1
        report.bytes += b.size
        if problem is not None:
            report.problems.append(f"{log_path}: batch at byte {position}: {problem}")
        if b.base_offset <= prev_last or b.base_offset < base:
            report.problems.append(f"{log_path}: batch at byte {position} has base offset "
                                   f"{b.base_offset}, not above {max(prev_last, base - 1)}")
        prev_last = max(prev_last, b.last_offset)
        batches[position] = (b.last_offset, b.max_timestamp)
    _verify_indexes(log_path, base, batches, report)
    return prev_last


def _verify_indexes(log_path, base, batches, report):
    stem = log_path[:-len(LOG_SUFFIX)]
    if os.path.exists(stem + INDEX_SUFFIX):
        prev = None
        for offset, position in read_offset_index(stem + INDEX_SUFFIX):
            where = f"{stem + INDEX_SUFFIX}: entry ({offset}, {position})"
            if prev is not None and (offset <= prev[0] or position <= prev[1]):
                report.problems.append(f"{where} does not increase")
            elif batches.get(position, (None,))[0] != offset:
                report.problems.append(f"{where} does not point at the batch ending at {offset}")
            prev = (offset, position)
    if os.path.exists(stem + TIME_INDEX_SUFFIX):
        by_last = {last: ts for last, ts in batches.values()}
        prev = None
        for ts, offset in read_time_index(stem + TIME_INDEX_SUFFIX):
            where = f"{stem + TIME_INDEX_SUFFIX}: entry ({ts}, {offset})"
            if prev is not None and (ts <= prev[0] or offset < prev[1]):
                report.problems.append(f"{where} does not increase")
            elif by_last.get(offset) != ts:
                report.problems.append(f"{where} does not name a batch with that max timestamp")
            prev = (ts, offset)
