"""LogValidator: the topic policies a produced batch must meet before it is appended (Kafka's
LogValidator), and broker-side recompression.

`validate_batch(config, batch, records, now)` returns the bytes to append (the producer's batch,
or a recompressed copy) or raises RecordPolicyError carrying the Kafka error code and per-record
errors (ProduceResponse.record_errors: batch index + message). Per batch, in Python: which rules
apply, decompression, recompression, the new header. Per record, compiled
(pybroker_core.validator.scan_records, GIL released):

  * cleanup.policy contains compact: every record needs a key          -> INVALID_RECORD 87
  * message.timestamp.type=CreateTime: each record timestamp within
    [now - message.timestamp.before.max.ms, now + message.timestamp.after.max.ms]
    (a timestamp of -1 is exempt, as in Kafka)                         -> INVALID_TIMESTAMP 32
  * record body above max.decompressed.message.bytes                   -> INVALID_RECORD 87
  * compressed batches: inner offset deltas 0, 1, 2, ...               -> INVALID_RECORD 87
Uncompressed batches are always checked record by record. A compressed batch is inflated (bounded)
only when a record rule beyond the defaults applies (compacted topic, a past bound, a record size
bound); otherwise the future bound is checked on the batch header's max timestamp, without
inflating the records for it (deviation: Kafka inflates every compressed batch).

compression.type (producer | uncompressed | gzip | snappy | lz4 | zstd): when it names a codec other
than the batch's, the records section is re-encoded with it (compression.<codec>.level applies):
the records' bytes are the same in every codec, so this is one decompress and one compress per
batch, never a per-record rewrite. The producer fields, offsets deltas, timestamps and transactional
flag are kept; the CRC is recomputed.
"""
import struct

from pybroker import _impl
from pybroker.codec import compression
from pybroker.codec.errors import CodecError

_scan = _impl.load("validator")
_crc = _impl.load("crc32c")

INVALID_TIMESTAMP = 32
INVALID_RECORD = 87
MESSAGE_TOO_LARGE = 10
LONG_MAX = (1 << 63) - 1
LONG_MIN = -(1 << 63)
HEADER = 61
CODECS = {"uncompressed": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
_DECOMPRESS_LIMIT = 64 << 20          # bound on one batch's inflated records while validating


class RecordPolicyError(Exception):
    """A batch breaks a topic policy: `code`, message, and [(batch_index, message)]."""

    def __init__(self, code, message, record_errors=()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.record_errors = list(record_errors)


def validate_batch(config, batch, records, now, partition_name=""):
    """Check `batch` (a RecordBatch view over `records`, validated for CRC and structure) against
    `config` (a LogConfig); returns the bytes to append."""
    codec = batch.compression
    blob = None
    if _needs_record_scan(config, batch):
        blob = _records_section(batch, records, codec)
        _check_records(config, batch, blob, now, partition_name)
    elif _future_bound_applies(config, batch):
        _check_max_timestamp(config, batch, now)
    target = _target_codec(config, codec)
    if target is None:
        return records
    if blob is None:
        blob = _records_section(batch, records, codec)
    out = recompress(batch, records, blob, target, _level(config, target))
    if len(out) > config.max_message_bytes:
        raise RecordPolicyError(MESSAGE_TOO_LARGE, f"The batch of {len(out)} bytes after "
                                f"recompression exceeds max.message.bytes {config.max_message_bytes}")
    return out


# ---- which rules apply --------------------------------------------------------------------------

def _create_time(config, batch):
    return batch.timestamp_type == 0 and not config.log_append_time


def _needs_record_scan(config, batch):
    if batch.records_count == 0:
        return False
    if config.compact or config.max_decompressed_message_bytes < 2147483639:
        return True
    if _create_time(config, batch) and config.message_timestamp_before_max_ms != LONG_MAX:
        return True
    # uncompressed records are cheap to walk: always check them one by one (as Kafka)
    return batch.compression == 0 and _create_time(config, batch)


def _future_bound_applies(config, batch):
    return _create_time(config, batch) and config.message_timestamp_after_max_ms != LONG_MAX


def _bounds(config, now):
    before, after = config.message_timestamp_before_max_ms, config.message_timestamp_after_max_ms
    lo = LONG_MIN if before >= now - LONG_MIN else now - before
    hi = LONG_MAX if after >= LONG_MAX - now else now + after
    return lo, hi


def _check_max_timestamp(config, batch, now):
    lo, hi = _bounds(config, now)
    ts = batch.max_timestamp
    if ts != -1 and not lo <= ts <= hi:
        message = _timestamp_message(ts, batch.last_offset_delta, lo, hi)
        raise RecordPolicyError(INVALID_TIMESTAMP, message, [(batch.last_offset_delta, message)])


# ---- per-record checks --------------------------------------------------------------------------

def _records_section(batch, records, codec):
    raw = memoryview(records).cast("B")[batch.pos + HEADER:batch.pos + batch.size]
    if codec == 0:
        return raw
    try:
        return compression.decompress(codec, raw, _DECOMPRESS_LIMIT, HEADER)
    except CodecError as exc:
        raise RecordPolicyError(2, f"Corrupt compressed batch: {exc}") from None


def _check_records(config, batch, blob, now, partition_name):
    create_time = _create_time(config, batch)
    lo, hi = _bounds(config, now) if create_time else (LONG_MIN, LONG_MAX)
    try:
        findings = _scan.scan_records(
            blob, 0, len(blob), batch.records_count, batch.base_timestamp,
            require_key=config.compact, min_timestamp=lo, max_timestamp=hi,
            max_record_size=config.max_decompressed_message_bytes,
            check_offsets=batch.compression != 0)
    except CodecError as exc:
        raise RecordPolicyError(INVALID_RECORD, f"Invalid record in the batch: {exc}") from None
    if findings:
        raise _policy_error(findings, lo, hi, partition_name, config)


def _policy_error(findings, lo, hi, partition_name, config):
    kinds = {k for _, k, _ in findings}
    errors = [(i, _finding_message(k, i, d, lo, hi, partition_name, config)) for i, k, d in findings]
    if _scan.KIND_NO_KEY in kinds or _scan.KIND_TOO_LARGE in kinds or _scan.KIND_OFFSET in kinds:
        errors = [e for e, (_, k, _) in zip(errors, findings) if k != _scan.KIND_TIMESTAMP] or errors
        return RecordPolicyError(INVALID_RECORD, errors[0][1], errors)
    return RecordPolicyError(INVALID_TIMESTAMP, errors[0][1], errors)


def _finding_message(kind, index, detail, lo, hi, partition_name, config):
    if kind == _scan.KIND_NO_KEY:
        return f"Compacted topic cannot accept message without key in topic partition {partition_name}."
    if kind == _scan.KIND_TIMESTAMP:
        return _timestamp_message(detail, index, lo, hi)
    if kind == _scan.KIND_TOO_LARGE:
        return (f"Record body of {detail} bytes exceeds max.decompressed.message.bytes "
                f"{config.max_decompressed_message_bytes}")
    return f"Inner record at index {index} has offset delta {detail}: offsets must be consecutive"


def _timestamp_message(ts, index, lo, hi):
    return (f"Timestamp {ts} of message with offset {index} is out of range. The timestamp "
            f"should be within [{lo}, {hi}]")


# ---- recompression ------------------------------------------------------------------------------

def _target_codec(config, codec):
    target = config.compression_type
    if target == "producer":
        return None
    wanted = CODECS[target]
    return None if wanted == codec else wanted


def _level(config, codec):
    return {1: config.compression_gzip_level, 3: config.compression_lz4_level,
            4: config.compression_zstd_level}.get(codec)


# header fields rewritten on recompression: 8 batch_length i32 | 17 crc u32 | 21 attributes i16
def recompress(batch, records, blob, codec, level=None):
    """The batch with its records section encoded by `codec` (0 = uncompressed)."""
    body = compression.compress(codec, blob, level) if codec else bytes(blob)
    head = bytearray(memoryview(records).cast("B")[batch.pos:batch.pos + HEADER])
    struct.pack_into(">i", head, 8, HEADER - 12 + len(body))
    struct.pack_into(">h", head, 21, (batch.attributes & ~0x07) | codec)
    crc = _crc.crc32c(body, _crc.crc32c(head[21:]))
    struct.pack_into(">I", head, 17, crc)
    return bytearray(head + body)
